#!/usr/bin/python3
"""Reads an mbox as a mail client would (Python's mailbox + email.policy.default) and prints
one JSON object: per message its headers, its text part, and its attachments, each written
byte for byte into OUTDIR.

Usage: read_mbox.py MBOX OUTDIR
"""
import email.policy
import json
import mailbox
import os
import sys


def main():
    box, outdir = sys.argv[1], sys.argv[2]
    messages = []
    for n, raw in enumerate(mailbox.mbox(box, create=False)):
        msg = email.message_from_bytes(raw.as_bytes(), policy=email.policy.default)
        body = msg.get_body(preferencelist=("plain",))
        attachments = []
        for i, part in enumerate(msg.iter_attachments()):
            path = os.path.join(outdir, "mail%d-part%d-%s" % (n, i, part.get_filename()))
            with open(path, "wb") as f:
                f.write(part.get_content())
            attachments.append({
                "filename": part.get_filename(),
                "content_type": part.get_content_type(),
                "disposition": part.get_content_disposition(),
                "path": path,
            })
        messages.append({
            "to": str(msg["To"]),
            "from": str(msg["From"]),
            "subject": str(msg["Subject"]),
            "date": str(msg["Date"]),
            "message_id": str(msg["Message-ID"]),
            "raw": raw.as_bytes().decode("utf-8", "replace"),
            "text": body.get_content() if body is not None else None,
            "attachments": attachments,
        })
    print(json.dumps({"messages": messages}))


main()
