"""Transfers: create (simple or multi-leg), batch, post, void, reverse, read."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from application.ledger_use_cases import LedgerService
from domain.commands import (
    Command,
    CreateTransfer,
    PostPendingTransfer,
    ReverseTransfer,
    VoidPendingTransfer,
    create_transfer,
)
from domain.ledger_batch import CommandResult
from domain.money import parse_amount
from domain.result_codes import LedgerRefusal, ResultCode
from domain.transfer import Posting, Side, Transfer
from interface.adapters.persistence.api_keys import Principal
from interface.api.consistency import tell_position
from interface.api.deps import Mover, Platform, Reader, ServiceDep, visible_account
from interface.api.errors import status_for
from interface.api.responses import ERROR_RESPONSES, refusal_of
from interface.api.schemas.ledger import (
    BatchItemResult,
    PostPendingRequest,
    ReverseRequest,
    TransferBatchRequest,
    TransferBatchResponse,
    TransferRequest,
    TransferResponse,
)

router = APIRouter(prefix="/v1/transfers", tags=["transfers"])

_CREATED_OR_FOUND: dict[int | str, dict[str, Any]] = {
    200: {"model": TransferResponse, "description": "Made before with this key"}
}


def command_from(body: TransferRequest, principal: Principal) -> CreateTransfer:
    if body.postings is not None:
        postings = tuple(
            Posting(
                posting.account_id,
                Side(posting.side),
                parse_amount(posting.amount, posting.currency),
                posting.currency,
            )
            for posting in body.postings
        )
    else:
        assert body.debit_account_id and body.credit_account_id and body.amount and body.currency
        amount_minor = parse_amount(body.amount, body.currency)
        postings = (
            Posting(body.debit_account_id, Side.DEBIT, amount_minor, body.currency),
            Posting(body.credit_account_id, Side.CREDIT, amount_minor, body.currency),
        )
    return create_transfer(
        idempotency_key=body.idempotency_key,
        postings=postings,
        pending=body.pending,
        timeout_s=body.timeout_s,
        metadata=body.metadata,
        linked=body.linked,
        scope=principal.idempotency_scope,
    )


def _require_own_debits(
    service: LedgerService, principal: Principal, transfer_postings: tuple[Posting, ...]
) -> None:
    """A user moves money only out of their own accounts (others: 404 alike)."""
    if not principal.is_user:
        return
    for posting in transfer_postings:
        if posting.side is Side.DEBIT:
            visible_account(service, principal, posting.account_id)


def _visible_transfer(
    service: LedgerService, principal: Principal, transfer_id: UUID, missing: ResultCode
) -> Transfer:
    """The transfer, if the caller may see it: a user, if one of its accounts is theirs."""
    transfer = service.transfer(transfer_id)
    if transfer is not None and principal.is_user:
        owners = {
            account.owner_id
            for posting in transfer.postings
            if (account := service.account(posting.account_id)) is not None
        }
        if principal.owner_id not in owners:
            transfer = None
    if transfer is None:
        raise LedgerRefusal(missing, f"transfer {transfer_id} does not exist")
    return transfer


def _transfer_after(service: LedgerService, result: CommandResult) -> Transfer:
    if not result.succeeded:
        raise refusal_of(result)
    assert result.id is not None
    transfer = service.transfer(result.id)
    assert transfer is not None, "a transfer the writer acknowledged must be readable"
    return transfer


@router.post(
    "",
    response_model=TransferResponse,
    status_code=201,
    responses=_CREATED_OR_FOUND | ERROR_RESPONSES,
)
async def create_transfer_route(
    body: TransferRequest, service: ServiceDep, principal: Mover, response: Response
) -> TransferResponse:
    """Move money: two postings (debit, credit) or several. A user moves money
    out of their own accounts only."""
    # On the event loop: the most frequent write waits for the writer without
    # holding a thread, and answers with the transfer the writer recorded.
    if body.linked:
        raise LedgerRefusal(
            ResultCode.LINKED_EVENT_CHAIN_OPEN, "linked applies only to items of a batch"
        )
    command = command_from(body, principal)
    if principal.is_user:
        await run_in_threadpool(_require_own_debits, service, principal, command.postings)
    receipt = await service.execute_async([command])
    result = receipt.results[0]
    if not result.succeeded:
        raise refusal_of(result)
    assert result.id is not None
    transfer = receipt.transfer(result.id)
    if transfer is None:
        # Found, not made (an earlier request with this key): read it back.
        transfer = await run_in_threadpool(_transfer_after, service, result)
    response.status_code = status_for(result.code)
    tell_position(response, receipt.position)
    return TransferResponse.of(transfer)


@router.post("/batch", response_model=TransferBatchResponse, responses=ERROR_RESPONSES)
async def create_transfer_batch_route(
    body: TransferBatchRequest, service: ServiceDep, principal: Platform, response: Response
) -> TransferBatchResponse:
    """Up to 8,190 transfers, decided in order; a result per item. Items marked
    `linked` succeed or fail together with the items after them up to the first
    unlinked one."""
    # On the event loop, like the single transfer: the batch waits for the
    # writer without holding a thread (none of this reads the database).
    results: dict[int, BatchItemResult] = {}
    commands: dict[int, Command] = {}
    for index, item in enumerate(body.transfers):
        try:
            commands[index] = command_from(item, principal)
        except LedgerRefusal as refusal:
            results[index] = BatchItemResult(
                index=index,
                code=refusal.code.value,
                message=refusal.message,
                details=refusal.details,
            )
    _fail_chains_with_invalid_members(body.transfers, results, commands)
    if commands:
        indexes = sorted(commands)
        receipt = await service.execute_async([commands[index] for index in indexes])
        tell_position(response, receipt.position)
        for index, result in zip(indexes, receipt.results, strict=True):
            results[index] = BatchItemResult(
                index=index,
                code=result.code.value,
                id=result.id,
                message=result.message,
                details=result.details,
            )
    ordered = [results[index] for index in range(len(body.transfers))]
    succeeded = sum(ResultCode(item.code).succeeded for item in ordered)
    return TransferBatchResponse(
        results=ordered, succeeded=succeeded, failed=len(ordered) - succeeded
    )


def _fail_chains_with_invalid_members(
    items: list[TransferRequest], results: dict[int, BatchItemResult], commands: dict[int, Command]
) -> None:
    """A chain with an invalid member never reaches the writer: it fails whole."""
    chain: list[int] = []
    for index, item in enumerate(items):
        chain.append(index)
        if item.linked and index < len(items) - 1:
            continue
        if any(member in results for member in chain):
            for member in chain:
                if member in commands:
                    del commands[member]
                    results[member] = BatchItemResult(
                        index=member, code=ResultCode.LINKED_EVENT_FAILED.value
                    )
        chain = []


@router.get("/{transfer_id:uuid}", response_model=TransferResponse, responses=ERROR_RESPONSES)
def get_transfer_route(
    transfer_id: UUID, service: ServiceDep, principal: Reader
) -> TransferResponse:
    """A transfer. A user sees those that touch one of their accounts."""
    return TransferResponse.of(
        _visible_transfer(service, principal, transfer_id, ResultCode.TRANSFER_NOT_FOUND)
    )


def _hold_the_caller_may_settle(
    service: LedgerService, principal: Principal, transfer_id: UUID
) -> Transfer:
    hold = service.transfer(transfer_id)
    if hold is None:
        raise LedgerRefusal(ResultCode.PENDING_TRANSFER_NOT_FOUND, "no such pending transfer")
    try:
        _require_own_debits(service, principal, hold.postings)
    except LedgerRefusal:
        raise LedgerRefusal(
            ResultCode.PENDING_TRANSFER_NOT_FOUND, "no such pending transfer"
        ) from None
    return hold


@router.post("/{transfer_id:uuid}/post", response_model=TransferResponse, responses=ERROR_RESPONSES)
def post_pending_route(
    transfer_id: UUID,
    service: ServiceDep,
    principal: Mover,
    response: Response,
    body: PostPendingRequest | None = None,
) -> TransferResponse:
    """Post a pending transfer in full, or a smaller amount (two-posting transfers).
    A user posts holds on their own accounts only."""
    pending = _hold_the_caller_may_settle(service, principal, transfer_id)
    amount_minor: int | None = None
    if body is not None and body.amount is not None:
        amount_minor = parse_amount(body.amount, pending.postings[0].currency)
    receipt = service.execute([PostPendingTransfer(transfer_id, amount_minor)])
    tell_position(response, receipt.position)
    return TransferResponse.of(_transfer_after(service, receipt.results[0]))


@router.post("/{transfer_id:uuid}/void", response_model=TransferResponse, responses=ERROR_RESPONSES)
def void_pending_route(
    transfer_id: UUID, service: ServiceDep, principal: Mover, response: Response
) -> TransferResponse:
    """Release a hold. A user voids holds on their own accounts only."""
    _hold_the_caller_may_settle(service, principal, transfer_id)
    receipt = service.execute([VoidPendingTransfer(transfer_id)])
    tell_position(response, receipt.position)
    return TransferResponse.of(_transfer_after(service, receipt.results[0]))


@router.post(
    "/{transfer_id:uuid}/reverse",
    response_model=TransferResponse,
    status_code=201,
    responses=_CREATED_OR_FOUND | ERROR_RESPONSES,
)
def reverse_route(
    transfer_id: UUID,
    service: ServiceDep,
    principal: Platform,
    response: Response,
    body: ReverseRequest | None = None,
) -> TransferResponse:
    """Correct a posted transfer with a new one that swaps every posting; once.
    Back office only (admin, service)."""
    metadata = body.metadata if body is not None else {}
    receipt = service.execute([ReverseTransfer(transfer_id, metadata)])
    result = receipt.results[0]
    reversal = _transfer_after(service, result)
    response.status_code = status_for(result.code)
    tell_position(response, receipt.position)
    return TransferResponse.of(reversal)
