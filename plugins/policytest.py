"""``kind: PolicyTest``: policy unit test files, run by ``guardrail test``.

Registered as a document kind so that ``guardrail validate`` checks test files (their
notation, and the check names and regions they mention) wherever they are found, next
to the policies they test. The library is ``guardrail.tools.policytest``.
"""

from guardrail import hookimpl


def validate_policy_test(document):
    """Validate a parsed ``kind: PolicyTest`` document (imported on use: it is rarely needed)."""
    from guardrail.tools.policytest import validate_document

    return validate_document(document)


@hookimpl(trylast=True)
def guardrail_register_document_kinds(register):
    register("PolicyTest", validate_policy_test)
