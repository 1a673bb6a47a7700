"""Password hashing with argon2id (argon2-cffi), cost taken from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError
from argon2.exceptions import VerificationError

from segs.config import Settings


@dataclass
class Passwords:
    settings: Settings
    _hasher: PasswordHasher = field(init=False)

    def __post_init__(self) -> None:
        self._hasher = PasswordHasher(
            time_cost=self.settings.argon2_time_cost,
            memory_cost=self.settings.argon2_memory_kib,
            parallelism=1,
        )

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True if *password* matches; a missing hash still costs one hash, against timing."""
        if password_hash is None:
            self._hasher.hash(password)
            return False
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the stored hash was made with other cost settings."""
        return self._hasher.check_needs_rehash(password_hash)
