from tests.builders import make_email, pdf_bytes


async def test_smoke(smtp, tenant, store):
    msg = make_email(attachments=[(pdf_bytes(2), "application/pdf", "doc.pdf")])
    refused = await smtp.send(msg)
    assert refused == {}
    faxes = await store.recent_faxes(None, 10)
    assert len(faxes) == 1
    print(faxes[0])
    logs = await store.recent_smtplog(None, 10)
    print(logs)
