"""Accounts: registration and sign-in (identity), staff administration (users), tokens and
their revocation, emailed codes, passwords, failed-login counts, who may see which meter
(access) and the audit trail of what staff did (audit).

What other rooms may use of it is named here.
"""

from segs.services.accounts.access import is_staff
from segs.services.accounts.access import readable_meter
from segs.services.accounts.access import visible_meter
from segs.services.accounts.audit import SYSTEM
from segs.services.accounts.audit import Actor
from segs.services.accounts.audit import record as record_audit
from segs.services.accounts.passwords import Passwords
from segs.services.accounts.users import NewAccount
from segs.services.accounts.users import check_password
from segs.services.accounts.users import create_user

__all__ = [
    "SYSTEM",
    "Actor",
    "NewAccount",
    "Passwords",
    "check_password",
    "create_user",
    "is_staff",
    "readable_meter",
    "record_audit",
    "visible_meter",
]
