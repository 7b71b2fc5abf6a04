"""What the two behaviour steps share: the animal lookup, the session owner, the new session row."""

from __future__ import annotations

import datetime as dt

from ... import config, db

UNKNOWN_H2O = "water restriction id {h2o!r} is not in lab.WaterRestriction (load it with load-animal)"


def animals() -> dict[str, tuple[int, str | None]]:
    """h2o id -> (subject_id, the animal's owner or None), from lab.WaterRestriction * lab.Subject."""
    from ... import lab

    rows = (lab.WaterRestriction * lab.Subject).proj("water_restriction_number", "username").to_dicts()
    return {r["water_restriction_number"]: (int(r["subject_id"]), r["username"]) for r in rows}


def session_owner(animal_owner: str | None) -> str:
    """Who a session belongs to: the ``session.user`` setting, else the animal's owner (the
    ``username`` column of the animal sheet), else the database user if a lab.Person, else
    ``unknown``."""
    import datajoint as dj

    from ... import lab

    for user in (config.get("session.user"), animal_owner, dj.config.database.user):
        if user and (lab.Person & {"username": user}):
            return user
    lab.Person.insert1(dict(username="unknown", fullname="unknown"), skip_duplicates=True)
    return "unknown"


def ensure_rig(rig: str, description: str) -> None:
    from ... import lab

    if not (lab.Rig & {"rig": rig}):
        lab.Rig.insert1(dict(rig=rig, rig_description=description), skip_duplicates=True)


def insert_session(subject_id: int, when: dt.datetime, user: str, rig: str) -> dict:
    """Insert the Session row with the subject's next session number (call inside the transaction).

    The subject's row is locked first (SELECT ... FOR UPDATE, MySQL and PostgreSQL alike), so two
    workers loading days of one animal at once number their sessions one after the other."""
    from ... import experiment, lab

    conn = db.connect()
    conn.query(
        f"SELECT subject_id FROM {lab.Subject.full_table_name} WHERE subject_id = %s FOR UPDATE", args=[subject_id]
    )
    # a locking read sees what other transactions committed (a plain read may use an older snapshot)
    rows = conn.query(
        f"SELECT session FROM {experiment.Session.full_table_name} WHERE subject_id = %s FOR UPDATE", args=[subject_id]
    ).fetchall()
    existing = [r[0] if not isinstance(r, dict) else r["session"] for r in rows]
    skey = dict(subject_id=subject_id, session=int(max(existing, default=0)) + 1)
    experiment.Session.insert1(dict(skey, session_date=when.date(), session_datetime=when, username=user, rig=rig))
    return skey


def transaction():
    """The shared connection's transaction (one per item)."""
    return db.connect().transaction
