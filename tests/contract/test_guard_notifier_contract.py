"""The GuardNotifier port: one contract, held by the notifier that writes
files and by the in-memory one tests use.

A subclass gives `world`: the notifier, what reached the owner, and a way to
make delivery fail for a while. What is held here is what the guards rely
on when a pass is retried or resumed: each notification id is delivered
once, ever, and a failed delivery says so and is delivered by a later try.
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Final, Protocol
from uuid import uuid4

import pytest

from application.ports.guard_notifier import (
    GuardNotification,
    GuardNotificationFailed,
    GuardNotificationKind,
    GuardNotifier,
    NotifiedPosition,
    guard_notification_id,
)
from domain.account_guard import guard_id_for
from interface.adapters.notifications.guard_notification_files import FileGuardNotifier
from tests.support.in_memory_guard_notifier import InMemoryGuardNotifier

AT: Final = datetime(2026, 1, 1, 12, tzinfo=UTC)
NOTIFIERS_AT_ONCE: Final = 8


class NotifierWorld(Protocol):
    @property
    def notifier(self) -> GuardNotifier: ...

    def delivered(self) -> list[str]:
        """The id of every notification that reached the owner, sorted."""
        ...

    def break_delivery(self) -> None:
        """Delivery fails from now until `mend_delivery`."""
        ...

    def mend_delivery(self) -> None: ...


def scheduled_liquidation(version: int = 3, equity_minor: int = 800_000) -> GuardNotification:
    funded_account_id = uuid4()
    return GuardNotification(
        notification_id=guard_notification_id(guard_id_for(funded_account_id), version),
        kind=GuardNotificationKind.LIQUIDATION_SCHEDULED,
        funded_account_id=funded_account_id,
        owner_id="trader-7",
        drawdown=Fraction(1, 5),
        equity_minor=equity_minor,
        peak_equity_minor=1_000_000,
        minimum_equity_minor=800_000,
        positions=(NotifiedPosition("position-1", "CRASH", "long", 4),),
        at=AT,
        liquidation_due_at=AT + timedelta(minutes=15),
    )


class GuardNotifierContract:
    """Every GuardNotifier must pass these; subclasses give `world`."""

    @pytest.fixture
    def world(self) -> NotifierWorld:
        raise NotImplementedError

    def test_a_new_notification_is_delivered_now(self, world: NotifierWorld) -> None:
        notification = scheduled_liquidation()
        assert world.notifier.notify(notification) is True
        assert world.delivered() == [notification.notification_id]

    def test_a_notification_delivered_before_is_not_delivered_again(
        self, world: NotifierWorld
    ) -> None:
        notification = scheduled_liquidation()
        world.notifier.notify(notification)
        assert world.notifier.notify(notification) is False
        assert world.delivered() == [notification.notification_id]

    def test_once_is_by_id_even_when_the_content_has_changed(self, world: NotifierWorld) -> None:
        notification = scheduled_liquidation(equity_minor=800_000)
        world.notifier.notify(notification)
        changed = replace(notification, equity_minor=790_000)
        assert world.notifier.notify(changed) is False
        assert world.delivered() == [notification.notification_id]

    def test_each_event_of_a_guard_is_a_notification_of_its_own(self, world: NotifierWorld) -> None:
        first, second = scheduled_liquidation(version=3), scheduled_liquidation(version=4)
        assert world.notifier.notify(first) is True
        assert world.notifier.notify(second) is True
        assert world.delivered() == sorted([first.notification_id, second.notification_id])

    def test_a_failed_delivery_says_so_and_a_later_try_delivers(self, world: NotifierWorld) -> None:
        notification = scheduled_liquidation()
        world.break_delivery()
        with pytest.raises(GuardNotificationFailed) as failed:
            world.notifier.notify(notification)
        assert failed.value.notification_id == notification.notification_id
        assert failed.value.reason
        world.mend_delivery()
        assert world.delivered() == []
        assert world.notifier.notify(notification) is True
        assert world.delivered() == [notification.notification_id]

    def test_notifiers_of_one_notification_at_once_deliver_it_once(
        self, world: NotifierWorld
    ) -> None:
        notification = scheduled_liquidation()
        with ThreadPoolExecutor(NOTIFIERS_AT_ONCE) as pool:
            answers = list(
                pool.map(lambda _: world.notifier.notify(notification), range(NOTIFIERS_AT_ONCE))
            )
        assert sorted(answers) == [False] * (NOTIFIERS_AT_ONCE - 1) + [True]
        assert world.delivered() == [notification.notification_id]


# Files --------------------------------------------------------------------------------


class FilesWorld:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files = FileGuardNotifier(folder)
        self._aside = folder.with_name(f"{folder.name}.aside")

    @property
    def notifier(self) -> GuardNotifier:
        return self.files

    def delivered(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(written.stem for written in self.folder.glob("*.json"))

    def break_delivery(self) -> None:
        # A plain file where the folder should be: nothing can be written in it
        # (chmod would not stop a test run as root).
        if self.folder.exists():
            shutil.move(self.folder, self._aside)
        self.folder.write_text("in the way")

    def mend_delivery(self) -> None:
        self.folder.unlink()
        if self._aside.exists():
            shutil.move(self._aside, self.folder)


class TestFileGuardNotifier(GuardNotifierContract):
    @pytest.fixture
    def world(self, tmp_path: Path) -> NotifierWorld:
        return FilesWorld(tmp_path / "notifications")

    def test_a_notifier_started_again_finds_the_notification_delivered(
        self, tmp_path: Path
    ) -> None:
        """The files are the record, not the process: a restart sends nothing twice."""
        notification = scheduled_liquidation()
        assert FileGuardNotifier(tmp_path).notify(notification) is True
        assert FileGuardNotifier(tmp_path).notify(notification) is False


# The in-memory fake -------------------------------------------------------------------


class InMemoryWorld:
    def __init__(self) -> None:
        self.fake = InMemoryGuardNotifier()

    @property
    def notifier(self) -> GuardNotifier:
        return self.fake

    def delivered(self) -> list[str]:
        return sorted(notification.notification_id for notification in self.fake.delivered)

    def break_delivery(self) -> None:
        self.fake.unreachable = True

    def mend_delivery(self) -> None:
        self.fake.unreachable = False


class TestInMemoryGuardNotifier(GuardNotifierContract):
    @pytest.fixture
    def world(self) -> NotifierWorld:
        return InMemoryWorld()
