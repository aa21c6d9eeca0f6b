import pytest

from consumer.classify import MASK, Redactor, classify_name, column_rule, tags_for, words


@pytest.mark.parametrize("name,expected", [
    ("email", {"PII"}), ("customer_email", {"PII"}), ("EmailAddress", {"PII"}), ("e_mail", {"PII"}),
    ("first_name", {"PII"}), ("lastName", {"PII"}), ("date_of_birth", {"PII"}), ("dob", {"PII"}),
    ("home_address", {"PII"}), ("ssn", {"PII"}), ("phone_number", {"PII"}), ("ip_address", {"PII"}),
    ("mrn", {"PHI"}), ("medical_record_number", {"PHI"}), ("diagnosis", {"PHI"}), ("diagnoses", {"PHI"}),
    ("icd10_code", {"PHI"}), ("icd_code", {"PHI"}), ("insurance_id", {"PHI"}), ("primary_diagnosis", {"PHI"}),
    ("credit_card_number", {"FINANCIAL"}), ("iban", {"FINANCIAL"}), ("salary", {"FINANCIAL"}),
    ("account_number", {"FINANCIAL"}), ("patient_email", {"PII", "PHI"}),
    # word boundaries: none of these is sensitive
    ("table_name", set()), ("timezone", set()), ("name", set()), ("id", set()), ("created_at", set()),
    ("emailed_count", set()), ("zipper", set()), ("shipping_method", set()), ("description", set()),
    ("status", set()), ("updated_by", set()), ("dobby", set()), ("icdx", set()),
])
def test_name_rules(name, expected):
    assert classify_name(name) == frozenset(expected)


def test_words():
    assert words("patientDOB_2") == ("patient", "dob", "2")
    assert words("HTTPStatus") == ("http", "status")


def test_precedence_config_then_comment_then_name():
    assert column_rule("email", {"classification": "NONE"}, {}).categories == frozenset()
    assert column_rule("notes", {"comment": "free text pgtrail:PHI"}, {}).categories == {"PHI"}
    assert column_rule("email", {"comment": "pgtrail:none"}, {}).categories == frozenset()
    assert column_rule("notes", {"classification": "FINANCIAL", "comment": "pgtrail:PHI"}, {}).categories == {"FINANCIAL"}
    assert column_rule("email", {"comment": "pgtrail:policy=mask"}, {}).policy == "mask"
    assert column_rule("email", {"policy": "drop"}, {}).policy == "drop"


def test_default_and_configured_policies():
    assert column_rule("email", None, {}).policy == "hash"
    assert column_rule("diagnosis", None, {}).policy == "drop"
    assert column_rule("salary", None, {}).policy == "mask"
    assert column_rule("email", None, {"PII": "mask"}).policy == "mask"
    assert column_rule("patient_email", None, {}).policy == "drop"  # strictest of PII (hash) and PHI (drop)
    assert column_rule("id", None, {}).policy == "keep"


def test_tags():
    assert tags_for({"PII"}) == ["PII", "GDPR"]
    assert tags_for({"PHI"}) == ["PHI", "GDPR", "HIPAA"]
    assert tags_for({"FINANCIAL", "PII"}) == ["FINANCIAL", "PII", "GDPR", "SOX"]
    assert tags_for(()) == []


def test_redaction():
    r = Redactor(b"k")
    redacted, cats = {}, set()
    row = {"id": 1, "email": "a@b.c", "salary": "10", "diagnosis": "J45", "phone": None}
    out = r.redact(row, {}, redacted, cats)
    assert out == {"id": 1, "email": r.hash_value("a@b.c"), "salary": MASK, "phone": None}
    assert redacted == {"email": "hash", "salary": "mask", "diagnosis": "drop", "phone": "hash"}
    assert cats == {"PII", "FINANCIAL", "PHI"}
    assert row["email"] == "a@b.c"  # the input is not modified
    assert r.hash_value("a@b.c") != Redactor(b"other").hash_value("a@b.c")  # keyed
    clean = {"id": 1, "note": "x"}
    assert r.redact(clean, {}, {}, set()) is clean  # nothing sensitive: no copy
