#!/usr/bin/env python3
"""Drives a login through a pseudo-terminal, as a person would.

With --step EXPECT SEND (repeatable) it plays a fixed dialog (password, code, sudo's prompt).
Otherwise it drives enroll-at-login:

Runs COMMAND (pamtester or ssh) under a pty, presses Enter to show the QR code, waits for the
enroll-at-login prompt, reads the key and the QR code from what the terminal printed (all of it:
tests/helpers/screen.py checks what an 80x24 screen shows), draws the QR code to a PNG and decodes it with
zbarimg, answers with wrong codes (--wrong N) and then the oathtool code, and prints one JSON
object: secret, decoded URI, the text shown before and after, exit status.

With --code-login it instead answers "Verification code:" with the oathtool code for
--secret at now + --offset seconds. --password PW answers a password prompt first.
"""
import argparse
import json
import os
import re
import struct
import subprocess
import sys
import time
import zlib

import pexpect

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
SHOW_QR_PROMPT = "Press Enter to show the QR code: "
ENROLL_PROMPT = "finish setting up: "
SAVED_PROMPT = "saved the backup codes: "
QR_CHARS = set(" ▀▄█")


def oathtool(secret, offset=0):
    at = "@%d" % (int(time.time()) + offset)
    return subprocess.check_output(["oathtool", "--totp", "-b", "--now", at, secret], text=True).strip()


def wrong_code(secret):
    near = {oathtool(secret, 30 * i) for i in (-2, -1, 0, 1, 2)}
    return next(c for c in ("%06d" % (n * 111111 % 1000000) for n in range(20)) if c not in near)


def qr_lines(text):
    """Lines drawn with half blocks; an ssh client may prefix the first with '(user@host) '."""
    lines = []
    for line in text.split("\n"):
        line = re.sub(r"^\([^)]*\) ", "", line)
        if len(line) >= 21 and set(line) <= QR_CHARS and set(line) & {"▀", "▄", "█"}:
            lines.append(line)
        elif lines and line.strip() == "" and len(line) >= 21:
            lines.append(line)  # blank rows of the quiet zone (light background)
    return lines


def write_png(lines, path, background, scale=4, margin=8):
    """Draws the lines as a terminal with that background shows them: half blocks in the
    foreground colour (light on a dark background, dark on a light one)."""
    fg, bg = (255, 0) if background == "dark" else (0, 255)
    width = max(len(l) for l in lines)
    w, h = width * scale + 2 * margin, len(lines) * 2 * scale + 2 * margin
    rows = [bytearray([bg] * w) for _ in range(h)]
    for r, line in enumerate(lines):
        for c, ch in enumerate(line):
            for half, painted in ((0, ch in "▀█"), (1, ch in "▄█")):
                if painted:
                    for dy in range(scale):
                        row = rows[margin + (2 * r + half) * scale + dy]
                        for dx in range(scale):
                            row[margin + c * scale + dx] = fg
    write_gray_png(rows, path)


def write_gray_png(rows, path):
    """An 8-bit greyscale PNG from rows of pixel bytes (no imaging library needed)."""
    w, h = len(rows[0]), len(rows)
    raw = b"".join(b"\x00" + bytes(row) for row in rows)

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def zbarimg(path):
    out = subprocess.run(["zbarimg", "--quiet", "--raw", path], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def clean(text):
    return ANSI.sub("", text or "").replace("\r", "")


def wait_for_barrier(directory, parties):
    open(os.path.join(directory, str(os.getpid())), "w").close()
    deadline = time.time() + 30
    while len(os.listdir(directory)) < parties and time.time() < deadline:
        time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wrong", type=int, default=0, help="wrong codes to send first")
    ap.add_argument("--png", help="where to draw the QR code read from the terminal")
    ap.add_argument("--background", choices=["dark", "light"], default="dark",
                    help="the terminal theme to draw the screen with")
    ap.add_argument("--barrier", help="directory: wait until --parties logins showed their QR")
    ap.add_argument("--parties", type=int, default=1)
    ap.add_argument("--code-login", action="store_true")
    ap.add_argument("--step", nargs=2, action="append", metavar=("EXPECT", "SEND"),
                    help="a dialog: wait for EXPECT (a regex), answer SEND; repeatable")
    ap.add_argument("--password", help="answer a password prompt with this first")
    ap.add_argument("--secret")
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command

    child = pexpect.spawn(command[0], command[1:], env=os.environ.copy(), encoding="utf-8",
                          timeout=40, dimensions=(60, 160))
    result = {}
    transcript = []
    if args.password is not None:
        child.expect(r"[Pp]assword( & verification code)?: ")
        transcript.append(clean(child.before))
        child.sendline(args.password)
    if args.step:
        for expect, send in args.step:
            index = child.expect([expect, pexpect.EOF])
            transcript.append(clean(child.before))
            if index == 1:
                result["missing"] = expect
                break
            transcript.append(clean(child.after))
            child.sendline(send)
    elif args.code_login:
        child.expect("Verification code: ")
        result["shown"] = clean(child.before)
        child.sendline(oathtool(args.secret, args.offset))
    else:
        shown = ""
        if child.expect([SHOW_QR_PROMPT, ENROLL_PROMPT]) == 0:
            shown = clean(child.before) + SHOW_QR_PROMPT
            child.sendline("")
            child.expect(ENROLL_PROMPT)
        shown += clean(child.before)
        result["shown"] = shown
        match = re.search(r"type this key into the app:\s*\n\s*([A-Z2-7 ]+)", shown)
        secret = match.group(1).replace(" ", "") if match else None
        result["secret"] = secret
        lines = qr_lines(shown)
        result["qr_lines"] = len(lines)
        if args.png and lines:
            write_png(lines, args.png, args.background)
            result["decoded"] = zbarimg(args.png)
        if args.barrier:
            wait_for_barrier(args.barrier, args.parties)
        gone = False
        for _ in range(args.wrong):
            child.sendline(wrong_code(secret))
            index = child.expect([ENROLL_PROMPT, pexpect.EOF])
            transcript.append(clean(child.before))
            if index == 1:
                gone = True
                break
        if not gone:
            child.sendline(oathtool(secret))
            index = child.expect([SAVED_PROMPT, pexpect.EOF])
            transcript.append(clean(child.before))
            if index == 0:
                child.sendline("")
    # Also when the program has already exited: what it printed last is still to be read.
    if not child.closed:
        try:
            child.expect(pexpect.EOF)
            transcript.append(clean(child.before))
        except pexpect.EOF:
            pass
    result["after"] = "".join(transcript)
    child.close()
    result["status"] = child.exitstatus
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
