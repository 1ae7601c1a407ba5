"""Every outcome of a ledger command has a stable machine code.

Modelled on TigerBeetle's result codes: a refused command says precisely why,
and the code never changes meaning once published. `ok` and `exists` are the
two successes; everything else is a refusal that wrote nothing.
"""

from __future__ import annotations

from enum import StrEnum


class ResultCode(StrEnum):
    OK = "ok"
    # The same idempotency key with the same details: the first result stands.
    EXISTS = "exists"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    INVALID_IDEMPOTENCY_KEY = "invalid_idempotency_key"

    INVALID_AMOUNT = "invalid_amount"
    AMOUNT_MUST_BE_POSITIVE = "amount_must_be_positive"
    AMOUNT_HAS_TOO_MANY_DECIMALS = "amount_has_too_many_decimals"
    AMOUNT_TOO_LARGE = "amount_too_large"
    UNKNOWN_CURRENCY = "unknown_currency"
    INVALID_METADATA = "invalid_metadata"

    ACCOUNT_NOT_FOUND = "account_not_found"
    ACCOUNT_NOT_ACTIVE = "account_not_active"
    ACCOUNT_HAS_PENDING_TRANSFERS = "account_has_pending_transfers"
    ACCOUNT_BALANCE_NOT_ZERO = "account_balance_not_zero"
    INVALID_ACCOUNT_FLAGS = "invalid_account_flags"
    INVALID_STATE_TRANSITION = "invalid_state_transition"
    CURRENCY_MISMATCH = "currency_mismatch"
    ACCOUNTS_MUST_BE_DIFFERENT = "accounts_must_be_different"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    EXCEEDS_DEBITS = "exceeds_debits"
    OVERFLOW = "overflow"

    TOO_FEW_POSTINGS = "too_few_postings"
    TOO_MANY_POSTINGS = "too_many_postings"
    UNBALANCED_POSTINGS = "unbalanced_postings"
    INVALID_TIMEOUT = "invalid_timeout"

    TRANSFER_NOT_FOUND = "transfer_not_found"
    TRANSFER_NOT_POSTED = "transfer_not_posted"
    # Reversing a transfer again with other details than its reversal (the
    # same details are a retry and answer `exists`).
    TRANSFER_ALREADY_REVERSED = "transfer_already_reversed"
    # A reversal is not reversed: a client posts a new transfer instead.
    REVERSAL_NOT_REVERSIBLE = "reversal_not_reversible"
    PENDING_TRANSFER_NOT_FOUND = "pending_transfer_not_found"
    PENDING_TRANSFER_NOT_PENDING = "pending_transfer_not_pending"
    PENDING_TRANSFER_ALREADY_POSTED = "pending_transfer_already_posted"
    PENDING_TRANSFER_ALREADY_VOIDED = "pending_transfer_already_voided"
    PENDING_TRANSFER_EXPIRED = "pending_transfer_expired"
    PENDING_TRANSFER_NOT_EXPIRED = "pending_transfer_not_expired"
    EXCEEDS_PENDING_TRANSFER_AMOUNT = "exceeds_pending_transfer_amount"
    PARTIAL_POST_NEEDS_TWO_POSTINGS = "partial_post_needs_two_postings"

    INVALID_CURSOR = "invalid_cursor"

    # Funded accounts (docs/rules.md#funded-accounts-and-withdrawals,
    # docs/rules.md#tiers-forks-and-merges).
    FUNDED_ACCOUNT_NOT_FOUND = "funded_account_not_found"
    ASSESSMENT_ALREADY_FUNDED = "assessment_already_funded"
    ASSESSMENT_NOT_PASSED = "assessment_not_passed"
    STARTING_BALANCE_BELOW_TIER_MINIMUM = "starting_balance_below_tier_minimum"
    TOO_MANY_OPEN_POSITIONS = "too_many_open_positions"
    POSITION_EXCEEDS_TIER_SHARE = "position_exceeds_tier_share"
    POSITION_EXCEEDS_RISK_LIMIT = "position_exceeds_risk_limit"
    CAPITAL_NOT_POSITIVE = "capital_not_positive"
    POSITION_ALREADY_OPEN = "position_already_open"
    POSITION_NOT_FOUND = "position_not_found"
    REALIZED_PNL_MISMATCH = "realized_pnl_mismatch"
    OPEN_POSITIONS_REMAIN = "open_positions_remain"
    # Withdrawals (docs/rules.md#funded-accounts-and-withdrawals): each refusal
    # of a request has its own code.
    OPEN_POSITIONS = "open_positions"
    BELOW_MINIMUM = "below_minimum"
    EXCEEDS_WITHDRAWABLE = "exceeds_withdrawable"
    WITHDRAWAL_NOT_FOUND = "withdrawal_not_found"
    # Approve or reject a withdrawal that is no longer waiting for an admin.
    WITHDRAWAL_NOT_PENDING = "withdrawal_not_pending"
    CLOSURE_NOT_FOUND = "closure_not_found"
    # Forks and merges (docs/rules.md#tiers-forks-and-merges).
    FORK_NOT_FOUND = "fork_not_found"
    FORK_NOT_ALLOWED = "fork_not_allowed"
    FORK_COOLDOWN = "fork_cooldown"
    FORK_CAPACITY_REACHED = "fork_capacity_reached"
    INSUFFICIENT_CAPITAL = "insufficient_capital"
    MERGE_NOT_FOUND = "merge_not_found"
    MERGE_TARGET_INVALID = "merge_target_invalid"
    # Reconciliation (docs/rules.md#reconciliation).
    RECONCILIATION_RUN_NOT_FOUND = "reconciliation_run_not_found"
    RECONCILIATION_EXCEPTION_NOT_FOUND = "reconciliation_exception_not_found"
    # Resolve an exception that was corrected or resolved already.
    RECONCILIATION_EXCEPTION_CLOSED = "reconciliation_exception_closed"
    # A run is under way on this server, or this scheduled slot ran already.
    RECONCILIATION_RUNNING = "reconciliation_running"
    # The payment processor could not be reached (the payout is retried).
    PAYOUT_UNAVAILABLE = "payout_unavailable"
    # The broker refused the order (its reason in the details), has no price
    # for the symbol, or could not be reached (retry later).
    BROKER_REJECTED = "broker_rejected"
    UNKNOWN_SYMBOL = "unknown_symbol"
    BROKER_UNAVAILABLE = "broker_unavailable"
    # Another request changed the same aggregate first; reading it again and
    # deciding again is safe.
    CONCURRENT_CHANGE = "concurrent_change"

    LINKED_EVENT_FAILED = "linked_event_failed"
    LINKED_EVENT_CHAIN_OPEN = "linked_event_chain_open"

    @property
    def succeeded(self) -> bool:
        return self in (ResultCode.OK, ResultCode.EXISTS)


class LedgerRefusal(Exception):
    """A command or an input refused with a stable code; nothing was written."""

    def __init__(self, code: ResultCode, message: str, **details: object) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
