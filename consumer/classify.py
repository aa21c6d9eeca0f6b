"""Compliance classification of columns, and redaction of their values.

A column is classified, in order of precedence, by an explicit entry in
script_tracking.column_classification, by a 'pgtrail:<CLASS>' tag in its COMMENT, or by its name.
Name rules match whole words of the name (split at '_', digits and camelCase), so `table_name`
and `timezone` are not PII while `first_name` and `tz_patient_dob` are classified.

Classes map to regulations: PII -> GDPR; PHI -> HIPAA and GDPR (health data is special-category
personal data); FINANCIAL -> SOX. Policies: mask (a fixed placeholder), hash (keyed HMAC, so equal
values stay joinable without being readable), drop (the column is removed), keep.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Iterable, Literal, Mapping

Category = Literal["PII", "PHI", "FINANCIAL"]
Policy = Literal["mask", "hash", "drop", "keep"]

REGULATIONS: dict[str, tuple[str, ...]] = {"PII": ("GDPR",), "PHI": ("HIPAA", "GDPR"), "FINANCIAL": ("SOX",)}
DEFAULT_POLICY: dict[str, Policy] = {"PII": "hash", "PHI": "drop", "FINANCIAL": "mask"}
_STRICTNESS = {"keep": 0, "mask": 1, "hash": 2, "drop": 3}
MASK = "****"

# Each rule: a sequence of words that must appear consecutively in the column's words.
_RULES: dict[str, list[tuple[str, ...]]] = {
    "PII": [
        ("email",), ("e", "mail"), ("phone",), ("mobile",), ("fax",), ("ssn",),
        ("social", "security"), ("first", "name"), ("last", "name"), ("full", "name"), ("middle", "name"),
        ("surname",), ("given", "name"), ("family", "name"), ("maiden", "name"), ("firstname",), ("lastname",),
        ("fullname",), ("birth",), ("birthday",), ("birthdate",), ("dob",), ("address",), ("street",),
        ("zip",), ("zipcode",), ("postcode",), ("postal", "code"), ("passport",), ("national", "id"),
        ("driver", "license"), ("drivers", "license"), ("license", "number"), ("ip", "address"), ("ip",),
        ("gender",), ("nationality",), ("ethnicity",), ("religion",), ("geolocation",), ("username",), ("user", "name"), ("tax", "id"), 
    ],
    "PHI": [
        ("mrn",), ("medical", "record"), ("medical", "record", "number"), ("diagnosis",), ("diagnoses",),
        ("icd",), ("icd10",), ("icd9",), ("icd", "code"), ("icd", "10"), ("insurance", "id"),
        ("insurance", "number"), ("insurance", "member"), ("health", "plan"), ("policy", "number"),
        ("patient",), ("prescription",), ("medication",), ("medications",), ("treatment",),
        ("allergy",), ("allergies",), ("blood", "type"), ("lab", "result"), ("symptom",),
        ("symptoms",), ("npi",), ("clinical",), ("procedure", "code"), ("cpt",),
    ],
    "FINANCIAL": [
        ("credit", "card"), ("card", "number"), ("cc", "number"), ("ccn",), ("cvv",), ("cvc",), ("iban",),
        ("bic",), ("swift",), ("account", "number"), ("bank", "account"), ("routing", "number"),
        ("sort", "code"), ("salary",), ("income",), ("wage",), ("wages",), ("balance",), ("invoice", "amount"), ("revenue",),
    ],
}
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_TAG = re.compile(r"pgtrail:\s*(PII|PHI|FINANCIAL|NONE)\b", re.IGNORECASE)
_POLICY_TAG = re.compile(r"pgtrail:\s*policy\s*=\s*(mask|hash|drop|keep)\b", re.IGNORECASE)


def words(name: str) -> tuple[str, ...]:
    """Split a column name into lower-case words: 'patientDOB_2' -> ('patient', 'dob', '2')."""
    return tuple(w.lower() for w in _WORDS.findall(name))


def _contains(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    n = len(needle)
    return any(haystack[i:i + n] == needle for i in range(len(haystack) - n + 1))


def classify_name(name: str) -> frozenset[str]:
    w = words(name)
    return frozenset(cat for cat, rules in _RULES.items() if any(_contains(w, r) for r in rules))


@dataclass(frozen=True)
class ColumnRule:
    categories: frozenset[str]
    policy: Policy

    @property
    def sensitive(self) -> bool:
        return bool(self.categories)


def _policy_for(categories: Iterable[str], policies: Mapping[str, Policy]) -> Policy:
    chosen: Policy = "keep"
    for cat in categories:
        p = policies.get(cat, DEFAULT_POLICY[cat])
        if _STRICTNESS[p] > _STRICTNESS[chosen]:
            chosen = p
    return chosen


def column_rule(name: str, override: Mapping[str, Any] | None, policies: Mapping[str, Policy]) -> ColumnRule:
    """Classification of one column: config entry, then comment tag, then name rules."""
    override = override or {}
    categories: frozenset[str] | None = None
    policy: Policy | None = override.get("policy")
    if override.get("classification"):
        cls = override["classification"].upper()
        categories = frozenset() if cls == "NONE" else frozenset({cls})
    comment = override.get("comment") or ""
    if categories is None:
        tags = {m.upper() for m in _TAG.findall(comment)}
        if tags:
            categories = frozenset() if tags == {"NONE"} else frozenset(tags - {"NONE"})
    if policy is None:
        m = _POLICY_TAG.search(comment)
        policy = m.group(1).lower() if m else None  # type: ignore[assignment]
    if categories is None:
        categories = classify_name(name)
    if policy is None:
        policy = _policy_for(categories, policies)
    return ColumnRule(categories, policy if categories else "keep")


def tags_for(categories: Iterable[str]) -> list[str]:
    cats = set(categories)
    regs = {r for c in cats for r in REGULATIONS.get(c, ())}
    return sorted(cats) + sorted(regs)


class Redactor:
    """Applies column rules to row values. Hashes are HMAC-SHA256 under `key`, so equal values
    hash equally (joinable) but cannot be looked up in a dictionary without the key."""

    def __init__(self, key: bytes, policies: Mapping[str, Policy] | None = None):
        self.key = key
        # HMAC-SHA256 with the key's inner and outer pads hashed once (RFC 2104): per value two
        # hash copies instead of a whole HMAC set-up; the same bytes as hmac.new(key, v, sha256).
        block = (hashlib.sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
        self.policies = dict(policies or {})
        self._cache: dict[str, ColumnRule] = {}  # rules of columns without overrides, by name

    def rule(self, column: str, override: Mapping[str, Any] | None) -> ColumnRule:
        if override:
            return column_rule(column, override, self.policies)
        cached = self._cache.get(column)
        if cached is None:
            cached = self._cache[column] = column_rule(column, None, self.policies)
        return cached

    def hash_value(self, value: Any) -> str:
        inner = self._inner.copy()
        inner.update(str(value).encode("utf-8"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return "hmac-sha256:" + outer.digest()[:16].hex()

    def sensitive_rules(self, columns: Iterable[str], overrides: Mapping[str, Any]) -> dict[str, ColumnRule]:
        """The rules of those of `columns` that are sensitive: worked out once per table, not per row."""
        return {c: rule for c in columns if (rule := self.rule(c, overrides.get(c))).sensitive}

    def redact(self, values: dict[str, Any] | None, overrides: Mapping[str, Any],
               redacted: dict[str, Policy], categories: set[str]) -> dict[str, Any] | None:
        """Return `values` with sensitive columns transformed; records what it did."""
        if values is None:
            return None
        return self.apply(values, self.sensitive_rules(values, overrides), redacted, categories)

    def apply(self, values: dict[str, Any] | None, rules: Mapping[str, ColumnRule],
              redacted: dict[str, Policy], categories: set[str] | None) -> dict[str, Any] | None:
        """`redact` with the sensitive columns' rules already known (`sensitive_rules`).
        `categories` None: the caller already counts every rule's categories."""
        if values is None:
            return None
        out: dict[str, Any] | None = None
        for column, rule in rules.items():
            if column not in values:
                continue
            value = values[column]
            if categories is not None:
                categories.update(rule.categories)
            if rule.policy == "keep":
                continue
            if out is None:
                out = dict(values)
            redacted[column] = rule.policy
            if rule.policy == "drop":
                del out[column]
            elif value is None:
                pass  # a null reveals nothing
            elif rule.policy == "mask":
                out[column] = MASK
            else:
                out[column] = self.hash_value(value)
        return values if out is None else out
