"""StreamChanges: a reader may skip a window only if no mark falls inside it."""

from __future__ import annotations

from myelin.services.stream_changes import StreamChanges


def test_start_up_counts_as_a_change_of_every_key() -> None:
    changes = StreamChanges(started_at=10)
    assert changes.changed_after(9) and changes.changed_after(9, "@a:x")
    assert not changes.changed_after(10) and not changes.changed_after(10, "@a:x")


def test_marks_are_per_key_and_never_move_back() -> None:
    changes = StreamChanges(started_at=10)
    changes.mark(15, "@a:x")
    changes.mark(12, "@a:x")  # an older position allocated earlier, written later
    assert changes.changed_after(14, "@a:x") and not changes.changed_after(15, "@a:x")
    assert not changes.changed_after(10, "@b:x")
    changes.mark(20)
    assert changes.changed_after(19) and not changes.changed_after(20)
