"""A tracked call's arguments get the classification and redaction of columns (issue #16): name
rules, the function's declared overrides, the configured policy; the overrides never leave."""
import hashlib
import hmac
import json

from consumer.classify import Redactor
from schemas import OperationEvent
from tests.unit.conftest import normalize

KEYS = {1: b"k" * 32}


def call_line(arguments, overrides=None, lsn="0/16B3748") -> str:
    details = {"arguments": arguments}
    if overrides is not None:
        details["argument_overrides"] = overrides
    body = json.dumps({"v": 1, "at": "2026-12-04T10:00:00.000000Z", "xid": None, "kind": "operation",
                       "operation_id": "6f1b7d0e-8a57-4a3c-9b1e-6d2f0c1a2b3c", "name": "auth.login_user(text,text,text)",
                       "operation_type": "FUNCTION_CALL", "status": "completed", "duration_ms": 1.5,
                       "details": details, "actor": {"session_user": "app", "tenant_id": "tenant_123"}})
    signature = hmac.new(KEYS[1], body.encode(), hashlib.sha256).hexdigest()
    return json.dumps({"action": "M", "lsn": lsn, "transactional": False, "prefix": "pgtrail",
                       "content": f"v1 1 {signature} {body}"})


def call(arguments, overrides=None, redactor=None) -> OperationEvent:
    (event,) = normalize([call_line(arguments, overrides)], keys=KEYS, redactor=redactor)[0]
    return event


def test_arguments_are_redacted_by_name_like_columns():
    e = call({"p_email": "test@email.com", "p_password": "***redacted***", "p_tenant_id": "tenant_123",
              "p_iban": "DE89370400440532013000", "p_diagnosis": "J45"})
    args = e.payload.details["arguments"]
    assert args["p_email"].startswith("hmac-sha256:") and args["p_iban"] == "****" and "p_diagnosis" not in args
    assert args["p_tenant_id"] == "tenant_123" and args["p_password"] == "***redacted***"
    assert e.payload.details["redacted"] == {"p_email": "hash", "p_iban": "mask", "p_diagnosis": "drop"}
    assert e.tags == ["FINANCIAL", "PHI", "PII", "GDPR", "HIPAA", "SOX"]
    assert "test@email.com" not in e.model_dump_json()


def test_declared_overrides_win_and_are_not_published():
    e = call({"p_email": "a@b.c", "p_memo": "private", "p_code": "X1"},
             {"p_email": {"classification": "NONE"}, "p_memo": {"classification": "PHI"},
              "p_code": {"classification": "PII", "policy": "mask"}})
    assert e.payload.details["arguments"] == {"p_email": "a@b.c", "p_code": "****"}
    assert "argument_overrides" not in e.payload.details
    assert e.tags == ["PHI", "PII", "GDPR", "HIPAA"]


def test_the_configured_policy_applies_to_arguments_too():
    e = call({"p_email": "a@b.c"}, redactor=Redactor(b"test-key", {"PII": "mask"}))
    assert e.payload.details["arguments"] == {"p_email": "****"}


def test_an_operation_without_arguments_is_untouched():
    e = call({})
    assert e.payload.details == {"arguments": {}} and e.tags == []
