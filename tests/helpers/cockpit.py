#!/usr/bin/python3
"""Drives twofold's Cockpit page in headless Chromium (Selenium + chromedriver), for
tests/cockpit.rs. Each scenario logs in through Cockpit's real login page, works the page as a
person would (clicks, typed answers), asserts what it must see on the way, saves screenshots,
and prints one JSON object on its last line of output for the Rust test to check against the
store.

Scenarios:
  admin  ADMIN with password + code; administrative access; the list and its filter; reset
         (cancel, then confirm); unlock; new backup codes for a user, shown once and removed;
         forget trusted computers; disable and enable.
  user   a plain USER without 2FA: enroll from the QR code (decoded with zbarimg), confirm
         with oathtool, new backup codes (authenticated with a backup code), log out, log in
         again with a backup code at the code prompt.
  plain  a plain USER: the admin view stays empty; cockpit.spawn of the admin CLI from the
         page's JavaScript (the browser console's reach) fails, with and without superuser.

Needs /usr/bin/python3 with python3-selenium, chromium, chromium-driver, zbar-tools, oathtool.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

FRAME = "iframe[name='cockpit1:localhost/twofold']"
CODE = re.compile(r"^[0-9]{4}-[0-9]{4}$")


def oathtool(secret):
    out = subprocess.run(["oathtool", "--totp", "-b", secret], capture_output=True, text=True, check=True)
    return out.stdout.strip()


class Page:
    def __init__(self, base, shots):
        options = webdriver.ChromeOptions()
        for flag in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-first-run", "--window-size=1280,900"]:
            options.add_argument(flag)
        self.driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        self.base = base
        self.shots = shots
        self.wait = WebDriverWait(self.driver, 30)

    def quit(self):
        self.driver.quit()

    # ---- waiting and finding ----

    def visible(self, by, what):
        return self.wait.until(EC.visibility_of_element_located((by, what)))

    def gone(self, by, what):
        self.wait.until(EC.invisibility_of_element_located((by, what)))

    def clickable(self, by, what):
        return self.wait.until(EC.element_to_be_clickable((by, what)))

    def text_is(self, by, what, text):
        self.wait.until(EC.text_to_be_present_in_element((by, what), text))

    # ---- frames and screenshots ----

    def into_page(self):
        self.driver.switch_to.default_content()
        frame = self.visible(By.CSS_SELECTOR, FRAME)
        self.driver.switch_to.frame(frame)
        self.wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")

    def shot(self, name):
        """The whole window, shell included; back into the page's frame after."""
        self.driver.switch_to.default_content()
        self.driver.save_screenshot(os.path.join(self.shots, name))
        if self.driver.find_elements(By.CSS_SELECTOR, FRAME):
            self.driver.switch_to.frame(self.driver.find_element(By.CSS_SELECTOR, FRAME))

    # ---- Cockpit's own pages ----

    def login(self, user, password, code=None, shot=None):
        """Cockpit's login page: user and password, then (with `code`) its second step, the
        PAM question asked by twofold. Without `code` the shell must load with no question."""
        self.driver.get(self.base + "/twofold")
        self.visible(By.ID, "login-user-input").send_keys(user)
        self.driver.find_element(By.ID, "login-password-input").send_keys(password)
        self.driver.find_element(By.ID, "login-button").click()
        if code is None:
            self.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, FRAME) or
                            d.find_element(By.ID, "conversation-prompt").is_displayed())
            assert self.driver.find_elements(By.CSS_SELECTOR, FRAME), \
                "Cockpit asked a question at login: " + self.driver.find_element(By.ID, "conversation-prompt").text
            self.into_page()
            return None
        prompt = self.visible(By.ID, "conversation-prompt").text
        field = self.driver.find_element(By.ID, "conversation-input")
        field.send_keys(code() if callable(code) else code)
        if shot:
            self.driver.save_screenshot(os.path.join(self.shots, shot))
        self.driver.find_element(By.ID, "login-button").click()
        self.into_page()
        return prompt

    def admin_access(self, password):
        """The shell's "Limited access" button: sudo with the login password."""
        self.driver.switch_to.default_content()
        self.clickable(By.XPATH, "//button[contains(., 'Limited access')]").click()
        self.visible(By.ID, "switch-to-admin-access-password").send_keys(password)
        self.driver.find_element(By.CSS_SELECTOR, "[role=dialog] button.pf-m-primary").click()
        self.visible(By.XPATH, "//button[contains(., 'Administrative access')]")
        self.into_page()

    def logout(self):
        self.driver.switch_to.default_content()
        self.clickable(By.ID, "toggle-menu").click()
        self.clickable(By.ID, "logout").click()
        self.visible(By.ID, "login-user-input")

    def spawn(self, argv, superuser):
        """cockpit.spawn from the page's JavaScript, as the browser console would run it."""
        options = {"err": "message"}
        if superuser:
            options["superuser"] = "require"
        script = """
            const done = arguments[arguments.length - 1];
            cockpit.spawn(arguments[0], arguments[1])
                .then(out => done({ ok: true, out: out }))
                .catch(ex => done({ ok: false, problem: ex.problem || null,
                                    status: ex.exit_status === undefined ? null : ex.exit_status,
                                    message: String(ex.message || ex) }));
        """
        self.driver.set_script_timeout(30)
        return self.driver.execute_async_script(script, argv, options)

    # ---- twofold's page ----

    def row(self, user):
        return self.driver.find_elements(By.CSS_SELECTOR, "#users-body tr[data-user='%s']" % user)

    def row_action(self, user, action):
        """Clicks a row's button. The table is drawn anew whenever the list is read again (after
        every action), so a button found just before a redraw is gone: find it again."""
        selector = "button[data-user='%s'][data-action='%s']" % (user, action)
        for _ in range(20):
            try:
                self.clickable(By.CSS_SELECTOR, selector).click()
                return
            except StaleElementReferenceException:
                time.sleep(0.25)
        raise AssertionError("the %s button of %s kept being redrawn" % (action, user))

    def shown_codes(self):
        self.visible(By.ID, "backup-codes")
        codes = [li.text.strip() for li in self.driver.find_elements(By.CSS_SELECTOR, "#backup-codes li")]
        assert codes and all(CODE.match(c) for c in codes), codes
        return codes

    def dismiss_codes(self, codes):
        """"I have saved them": the codes leave the page (DOM), not just the screen."""
        self.clickable(By.ID, "codes-done").click()
        self.wait.until(lambda d: not d.find_elements(By.ID, "backup-codes"))
        source = self.driver.page_source
        assert not any(c in source for c in codes), "backup codes still in the page"

    def answer(self, expect, value):
        """One question of twofold-self, asked through the page: wait for it, answer it."""
        self.text_is(By.ID, "my-prompt", expect)
        field = self.driver.find_element(By.ID, "my-answer")
        assert field.get_attribute("type") == "password"
        field.send_keys(value)
        self.driver.find_element(By.ID, "my-answer-send").click()


def storage_is_empty(page):
    """Nothing of ours in the browser's storage: local and session storage of the page."""
    keys = page.driver.execute_script(
        "return Object.keys(window.localStorage).concat(Object.keys(window.sessionStorage))")
    return [k for k in keys if "twofold" in k.lower()] == []


def scenario_admin(page, args):
    prompt = page.login(args.user, args.password, lambda: oathtool(args.secret), shot="login-code.png")
    page.admin_access(args.password)
    page.clickable(By.ID, "tab-admin").click()
    page.visible(By.CSS_SELECTOR, "#users-body tr[data-user='%s']" % args.reset)
    page.visible(By.CSS_SELECTOR, "#users-body tr[data-user='%s'][data-state='locked']" % args.locked)
    page.visible(By.ID, "check-summary")
    listed = [r.get_attribute("data-user") for r in page.driver.find_elements(By.CSS_SELECTOR, "#users-body tr")]
    summary = page.driver.find_element(By.ID, "admin-summary").text
    page.shot("admin-users.png")

    # The filter narrows the table to matching names.
    page.driver.find_element(By.ID, "filter-user").send_keys(args.reset)
    filtered = [r.get_attribute("data-user") for r in page.driver.find_elements(By.CSS_SELECTOR, "#users-body tr")]
    page.driver.find_element(By.ID, "filter-user").clear()
    page.driver.execute_script("document.getElementById('filter-user').dispatchEvent(new Event('input'))")

    # Reset: cancelled first (nothing happens), then confirmed.
    page.row_action(args.reset, "Reset")
    page.visible(By.ID, "confirm")
    page.shot("admin-reset-confirm.png")
    page.driver.find_element(By.ID, "confirm-no").click()
    page.gone(By.ID, "confirm")
    still_there_after_cancel = bool(page.row(args.reset))
    page.row_action(args.reset, "Reset")
    page.clickable(By.ID, "confirm-yes").click()
    page.text_is(By.ID, "admin-message", "2FA removed")
    page.wait.until(lambda d: not page.row(args.reset))

    # Unlock.
    page.row_action(args.locked, "Unlock")
    page.text_is(By.ID, "admin-message", "unlocked")
    page.visible(By.CSS_SELECTOR, "#users-body tr[data-user='%s'][data-state='enabled']" % args.locked)

    # New backup codes for the unlocked user: confirmed, shown once, removed.
    page.row_action(args.locked, "New backup codes")
    page.clickable(By.ID, "confirm-yes").click()
    codes = page.shown_codes()
    page.shot("admin-codes.png")
    page.dismiss_codes(codes)

    # Forget trusted computers; disable, then enable again.
    page.row_action(args.locked, "Forget trusted computers")
    page.text_is(By.ID, "admin-message", "trusted computers forgotten")
    page.row_action(args.locked, "Disable")
    page.visible(By.CSS_SELECTOR, "#users-body tr[data-user='%s'][data-state='disabled']" % args.locked)
    page.row_action(args.locked, "Enable")
    page.visible(By.CSS_SELECTOR, "#users-body tr[data-user='%s'][data-state='enabled']" % args.locked)
    return {"prompt": prompt, "listed": listed, "filtered": filtered, "summary": summary,
            "still_there_after_cancel": still_there_after_cancel, "codes": codes,
            "storage_clean": storage_is_empty(page)}


def decode_qr(page):
    """The page's QR code, as a screenshot of its element, decoded by zbarimg."""
    element = page.visible(By.CSS_SELECTOR, "#my-qr svg")
    with tempfile.NamedTemporaryFile(suffix=".png") as png:
        png.write(element.screenshot_as_png)
        png.flush()
        out = subprocess.run(["zbarimg", "--raw", "-q", png.name], capture_output=True, text=True)
    assert out.returncode == 0, "zbarimg found no QR code: " + out.stderr
    uri = out.stdout.strip()
    query = urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)
    return uri, query["secret"][0]


def scenario_user(page, args):
    page.login(args.user, args.password)
    page.text_is(By.ID, "my-state", "not set up")
    page.clickable(By.ID, "my-enroll").click()
    page.answer("Password", args.password)
    uri, secret = decode_qr(page)
    typed_key = page.driver.find_element(By.ID, "my-secret").text.replace(" ", "")
    page.text_is(By.ID, "my-prompt", "code")
    page.shot("my-2fa-enroll.png")
    page.answer("code", oathtool(secret))
    first_codes = page.shown_codes()
    assert not page.driver.find_elements(By.ID, "my-qr"), "the QR code stayed on the page"
    assert secret not in page.driver.page_source, "the key stayed on the page"
    page.shot("my-2fa-codes.png")
    page.dismiss_codes(first_codes)
    page.text_is(By.ID, "my-state", "on")

    # New backup codes: password, then a backup code at the code question.
    page.clickable(By.ID, "my-codes").click()
    page.answer("Password", args.password)
    page.answer("code", first_codes[0])
    new_codes = page.shown_codes()
    page.dismiss_codes(new_codes)
    page.text_is(By.ID, "my-codes-left", str(len(new_codes)))
    page.shot("my-2fa.png")
    storage_clean = storage_is_empty(page)

    # Out, and in again: now Cockpit's login asks for the code (a new backup code here).
    page.logout()
    prompt = page.login(args.user, args.password, new_codes[0])
    page.text_is(By.ID, "my-codes-left", str(len(new_codes) - 1))
    return {"uri": uri, "secret": secret, "typed_key": typed_key, "first_codes": first_codes,
            "new_codes": new_codes, "relogin_prompt": prompt, "storage_clean": storage_clean}


def scenario_plain(page, args):
    page.login(args.user, args.password)
    page.clickable(By.ID, "tab-admin").click()
    page.visible(By.ID, "admin-locked")
    rows = len(page.driver.find_elements(By.CSS_SELECTOR, "#users-body tr"))
    page.shot("plain-user-admin-tab.png")
    return {
        "rows": rows,
        "list_superuser": page.spawn(["twofold", "list", "--json"], True),
        "list": page.spawn(["twofold", "list", "--json"], False),
        "status_other": page.spawn(["twofold", "status", args.victim, "--json"], False),
        "reset_superuser": page.spawn(["twofold", "reset", args.victim, "--yes"], True),
        "reset": page.spawn(["twofold", "reset", args.victim, "--yes"], False),
        "self_status": page.spawn(["twofold-self", "--json", "status"], False),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=["admin", "user", "plain"])
    parser.add_argument("--base", required=True)
    parser.add_argument("--shots", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--secret")
    parser.add_argument("--reset")
    parser.add_argument("--locked")
    parser.add_argument("--victim")
    parser.add_argument("--failures", default=tempfile.gettempdir(), help="where a failure's screenshot goes")
    args = parser.parse_args()
    os.makedirs(args.shots, exist_ok=True)
    page = Page(args.base, args.shots)
    try:
        result = {"admin": scenario_admin, "user": scenario_user, "plain": scenario_plain}[args.scenario](page, args)
    except (AssertionError, TimeoutException):
        page.shots = args.failures
        page.shot("cockpit-failed-%s.png" % args.scenario)
        raise
    finally:
        page.quit()
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
