#!/usr/bin/python3
"""Plays enroll-at-login on an 80x24 terminal, as a person at a Linux console would.

Runs COMMAND (pamtester or ssh) under a pty of 80x24 whose output goes through pyte, a terminal
emulator, so that what counts is what the screen shows, not what scrolled by. At "Press Enter to
show the QR code" it keeps the visible screen and reads the key from it, presses Enter; at the
code prompt it keeps the visible screen again, draws all of it (text too) as a terminal with
--background does, decodes the drawing with zbarimg, answers with the oathtool code and
finishes the login. Prints one JSON object: the two screens (24 lines each), the cursor line at
the code prompt, the key, what zbarimg decoded, the text after, the exit status.

Needs Debian's python3 (/usr/bin/python3) with python3-pexpect and python3-pyte.
"""
import argparse
import json
import os
import re
import sys

import pexpect
import pyte

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from terminal import clean, oathtool, zbarimg, write_gray_png  # noqa: E402

COLUMNS, LINES = 80, 24
SHOW_QR_PROMPT = "Press Enter to show the QR code: "
ENROLL_PROMPT = "finish setting up: "
SAVED_PROMPT = "saved the backup codes: "


class Terminal:
    """pyte's screen, fed with everything the child writes (pexpect's logfile_read)."""

    def __init__(self):
        self.screen = pyte.Screen(COLUMNS, LINES)
        self.stream = pyte.Stream(self.screen)

    def write(self, text):
        self.stream.feed(text)

    def flush(self):
        pass

    def visible(self):
        return [line.rstrip() for line in self.screen.display]


def draw(lines, path, background, scale=4, margin=16):
    """The whole screen as pixels: each cell scale wide and 2*scale high (a terminal cell is
    about twice as high as wide), half blocks painted in the foreground colour, any other
    character as a blot of foreground (text is noise around the code), the rest background."""
    fg, bg = (255, 0) if background == "dark" else (0, 255)
    w, h = COLUMNS * scale + 2 * margin, LINES * 2 * scale + 2 * margin
    rows = [bytearray([bg] * w) for _ in range(h)]

    def paint(x0, y0, x1, y1):
        for y in range(y0, y1):
            rows[y][x0:x1] = bytes([fg]) * (x1 - x0)

    for r, line in enumerate(lines):
        for c, ch in enumerate(line):
            x, y = margin + c * scale, margin + r * 2 * scale
            if ch in "▀█":
                paint(x, y, x + scale, y + scale)
            if ch in "▄█":
                paint(x, y + scale, x + scale, y + 2 * scale)
            if ch not in " ▀▄█":
                paint(x + 1, y + scale // 2, x + scale - 1, y + 2 * scale - scale // 2)
    write_gray_png(rows, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--png", required=True, help="where to draw the screen at the code prompt")
    ap.add_argument("--background", choices=["dark", "light"], default="dark")
    ap.add_argument("--password", help="answer a password prompt with this first")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command

    term = Terminal()
    child = pexpect.spawn(command[0], command[1:], env=os.environ.copy(), encoding="utf-8",
                          timeout=40, dimensions=(LINES, COLUMNS))
    child.logfile_read = term
    result = {}
    if args.password is not None:
        child.expect(r"[Pp]assword: ")
        child.sendline(args.password)
    index = child.expect([SHOW_QR_PROMPT, ENROLL_PROMPT, pexpect.EOF])
    result["explanation_screen"] = term.visible()
    text = "\n".join(term.visible())
    match = re.search(r"type this key into the app:\s*\n\s*([A-Z2-7 ]+)", text)
    secret = match.group(1).replace(" ", "") if match else None
    result["secret"] = secret
    if index == 0:
        child.sendline("")
        index = child.expect([ENROLL_PROMPT, pexpect.EOF])
    if index == 0 and secret:
        result["code_screen"] = term.visible()
        result["cursor_line"] = term.screen.cursor.y
        draw(term.screen.display, args.png, args.background)
        result["decoded"] = zbarimg(args.png)
        child.sendline(oathtool(secret))
        after = []
        if child.expect([SAVED_PROMPT, pexpect.EOF]) == 0:
            after.append(clean(child.before) + SAVED_PROMPT)
            child.sendline("")
            child.expect(pexpect.EOF)
        after.append(clean(child.before))
        result["after"] = "".join(after)
    child.close()
    result["status"] = child.exitstatus
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
