/* twofold's Cockpit page: two views over the same commands admins and users run in a
 * terminal. Nothing here decides anything about records: the admin view runs the `twofold`
 * CLI as root (cockpit.spawn with superuser "require": Cockpit's administrative access), the
 * "My 2FA" view runs the setuid self-service helper `twofold-self --json` as the logged-in
 * user, which authenticates them through PAM (password and code) before any change.
 *
 * Both commands are found through the bridge's PATH ($PREFIX/bin of scripts/install.sh:
 * /usr/local/bin, or /usr/bin from the Debian package).
 *
 * Secrets (a new key, its QR code, new backup codes, what the user types) live only in DOM
 * nodes and local variables: never in localStorage, sessionStorage, cookies or the URL. They
 * are removed from the page as soon as the user is done with them.
 */
"use strict";

const CLI = "twofold";
const SELF = "twofold-self";

/* ---- small DOM helpers: text only (textContent), never HTML built from data ---- */

function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
        if (key === "onclick")
            node.addEventListener("click", value);
        else if (key === "class")
            node.className = value;
        else
            node.setAttribute(key, value);
    }
    for (const child of children) {
        if (child === null || child === undefined)
            continue;
        node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
}

function byId(id) {
    return document.getElementById(id);
}

function clear(node) {
    while (node.firstChild)
        node.removeChild(node.firstChild);
}

function say(id, text, kind) {
    const node = byId(id);
    node.textContent = text || "";
    node.className = "message " + (kind || "");
}

function hide(node, hidden) {
    node.classList.toggle("hidden", hidden);
}

/* What a failed spawn says: the command's own error text when it printed one. */
function failure(ex) {
    if (ex && ex.problem === "not-found")
        return "The command was not found on this server: is twofold installed (scripts/install.sh or the Debian package)?";
    if (ex && ex.problem === "access-denied")
        return "Not permitted: this needs administrative access.";
    const text = ex && ex.message ? String(ex.message).trim() : String(ex);
    return text.replace(/^twofold(-self)?: /gm, "");
}

/* ---- tabs ---- */

function showView(name) {
    for (const view of ["mine", "admin"]) {
        hide(byId("view-" + view), view !== name);
        byId("tab-" + view).setAttribute("aria-selected", String(view === name));
    }
}

/* ---- the confirmation dialog: resolves true (confirmed) or false ---- */

function confirmAction(text, button) {
    return new Promise(resolve => {
        const overlay = byId("confirm");
        byId("confirm-text").textContent = text;
        byId("confirm-yes").textContent = button;
        hide(overlay, false);
        const done = answer => {
            hide(overlay, true);
            byId("confirm-yes").onclick = null;
            byId("confirm-no").onclick = null;
            resolve(answer);
        };
        byId("confirm-yes").onclick = () => done(true);
        byId("confirm-no").onclick = () => done(false);
    });
}

/* ---- backup codes, shown once: a list, a download, and a button that removes them ---- */

function codesIn(text) {
    return text.split("\n").map(l => l.trim()).filter(l => /^[0-9]{4}-[0-9]{4}$/.test(l));
}

function showCodes(container, user, codes, onDone) {
    clear(container);
    hide(container, false);
    const list = el("ol", { class: "codes", id: "backup-codes" },
                    ...codes.map(code => el("li", {}, code)));
    const download = () => {
        const blob = new Blob([codes.join("\n") + "\n"], { type: "text/plain" });
        const url = URL.createObjectURL(blob);
        const link = el("a", { href: url, download: "backup-codes-" + user + ".txt" });
        document.body.append(link);
        link.click();
        link.remove();
        setTimeout(() => URL.revokeObjectURL(url), 1000);
    };
    const done = () => {
        clear(container);
        hide(container, true);
        if (onDone)
            onDone();
    };
    container.append(
        el("h2", {}, "New backup codes for " + user),
        el("p", {}, "Each works once instead of a code from the app. They are not shown again: " +
           "write them down or download them now."),
        list,
        el("div", { class: "actions" },
           el("button", { type: "button", id: "codes-download", onclick: download }, "Download"),
           el("button", { type: "button", id: "codes-done", class: "primary", onclick: done },
              "I have saved them")));
}

/* ==== Admin view: `twofold` as root ==== */

const admin = { rows: [], allowed: false };

function cli(args) {
    return cockpit.spawn([CLI].concat(args), { superuser: "require", err: "message" });
}

function stateOf(row) {
    if (row.locked)
        return "locked";
    return row.enrolled ? row.state : "not enrolled";
}

function matchesFilter(row) {
    const name = byId("filter-user").value.trim();
    const state = byId("filter-state").value;
    if (name && !row.user.includes(name))
        return false;
    if (state === "locked")
        return row.locked;
    return !state || (row.enrolled ? row.state : "not enrolled") === state;
}

function stateLabel(row) {
    const state = row.enrolled ? row.state : "not enrolled";
    const kind = { enabled: "enabled", disabled: "disabled", pending: "pending" }[state] || "none";
    const label = el("span", { class: "label " + kind }, row.enrolled ? "2FA " + state : "no 2FA");
    if (!row.locked)
        return label;
    return el("span", {}, label, " ", el("span", { class: "label none" }, "locked"));
}

function actionButton(label, row, run) {
    return el("button", { type: "button", "data-user": row.user, "data-action": label, onclick: run },
              label);
}

function rowActions(row) {
    const buttons = [];
    if (row.locked)
        buttons.push(actionButton("Unlock", row, () => simpleAction(row, ["unlock", row.user], "unlocked")));
    if (row.enrolled && row.state === "enabled")
        buttons.push(actionButton("Disable", row, () => simpleAction(row, ["disable", row.user], "disabled")));
    if (row.enrolled && row.state === "disabled")
        buttons.push(actionButton("Enable", row, () => simpleAction(row, ["enable", row.user], "enabled")));
    if (row.enrolled) {
        buttons.push(actionButton("New backup codes", row, () => regenerateCodes(row)));
        if (row.trusted_hosts && row.trusted_hosts.length)
            buttons.push(actionButton("Forget trusted computers", row,
                                      () => simpleAction(row, ["trust", row.user, "--clear"], "trusted computers forgotten")));
        buttons.push(actionButton("Reset", row, () => resetUser(row)));
    }
    return el("div", { class: "actions" }, ...buttons);
}

/* Counts over all rows (not the filtered ones): where the policy's rollout stands. */
function summarize(rows) {
    const count = test => rows.filter(test).length;
    const parts = [
        count(r => r.enrolled && r.state === "enabled") + " with 2FA on",
        count(r => r.enrolled && r.state === "disabled") + " off",
        count(r => r.enrolled && r.state === "pending") + " pending",
        count(r => !r.enrolled && r.required === true) + " required but not set up",
        count(r => r.locked) + " locked",
    ];
    byId("admin-summary").textContent = rows.length + " users listed: " + parts.join(", ") + ".";
}

function renderUsers() {
    summarize(admin.rows);
    const body = byId("users-body");
    clear(body);
    for (const row of admin.rows.filter(matchesFilter)) {
        body.append(el("tr", { "data-user": row.user, "data-state": stateOf(row) },
                       el("td", {}, row.user),
                       el("td", {}, stateLabel(row)),
                       el("td", {}, row.required === true ? "yes" : row.required === false ? "no" : "?"),
                       el("td", {}, row.enrolled ? String(row.backup_codes_left) : "-"),
                       el("td", {}, String((row.trusted_hosts || []).length)),
                       el("td", {}, row.last_used || "never"),
                       el("td", {}, row.locked ? "until " + row.locked_until : "no"),
                       el("td", {}, rowActions(row))));
    }
}

/* `list` and `check` exit non-zero with their JSON still printed (a required user not
 * enrolled; findings): the output is read whatever the exit status. */
function cliOutput(args) {
    return new Promise(resolve => {
        cli(args)
                .done(out => resolve({ out, ex: null }))
                .fail((ex, out) => resolve({ out, ex }));
    });
}

function parsed(result, messageId) {
    try {
        return JSON.parse(result.out);
    } catch (_) {
        say(messageId, failure(result.ex || "no output"), "error");
        return null;
    }
}

async function loadUsers() {
    const rows = parsed(await cliOutput(["list", "--json"]), "admin-message");
    if (!rows)
        return;
    admin.rows = rows;
    renderUsers();
}

function findingNode(f) {
    const where = f.file ? " (" + f.file + (f.line ? ":" + f.line : "") + ")" : "";
    return el("li", { class: "finding " + f.severity },
              el("strong", {}, f.severity + ": "), f.problem + where,
              f.fix ? el("div", { class: "hint" }, "Fix: " + f.fix) : null);
}

async function loadCheck() {
    const box = byId("admin-check");
    clear(box);
    const report = parsed(await cliOutput(["check", "--json"]), "admin-message");
    if (!report)
        return;
    box.append(el("p", { id: "check-summary" },
                  report.errors + " errors, " + report.warnings + " warnings, " + report.infos + " notes"),
               el("ul", {}, ...report.findings.filter(f => f.severity !== "info").map(findingNode)));
}

async function simpleAction(row, args, done) {
    say("admin-message", "");
    try {
        await cli(args);
        say("admin-message", row.user + ": " + done + ".", "ok");
    } catch (ex) {
        say("admin-message", failure(ex), "error");
    }
    await loadUsers();
}

async function resetUser(row) {
    const sure = await confirmAction("Remove 2FA for " + row.user + "? Their key and backup codes " +
                                     "are deleted and they must set up 2FA again.", "Reset");
    if (!sure)
        return;
    await simpleAction(row, ["reset", row.user, "--yes"], "2FA removed");
}

async function regenerateCodes(row) {
    const sure = await confirmAction("Make new backup codes for " + row.user + "? Their " +
                                     row.backup_codes_left + " unused codes stop working.", "Make new codes");
    if (!sure)
        return;
    say("admin-message", "");
    try {
        const text = await cli(["codes", row.user, "--regenerate", "--yes"]);
        showCodes(byId("admin-secret"), row.user, codesIn(text));
    } catch (ex) {
        say("admin-message", failure(ex), "error");
    }
    await loadUsers();
}

/* The admin view follows Cockpit's administrative access: on, it loads; off, it says how.
 * This is only what the page shows: the refusal itself is Cockpit's (superuser "require"
 * fails without administrative access) and the CLI's (it needs root to read the store). */
function watchSuperuser() {
    const proxy = cockpit.dbus(null, { bus: "internal" }).proxy("cockpit.Superuser", "/superuser");
    const update = () => {
        /* "none" or "init" (still starting); otherwise the privileged bridge's name ("sudo"). */
        const root = Boolean(proxy.Current) && proxy.Current !== "none" && proxy.Current !== "init";
        hide(byId("admin-locked"), root);
        hide(byId("admin-body"), !root);
        if (root && !admin.allowed) {
            loadUsers();
            loadCheck();
        }
        admin.allowed = root;
        if (!root) {
            admin.rows = [];
            clear(byId("users-body"));
        }
    };
    proxy.wait(update);
    proxy.addEventListener("changed", update);
}

/* ==== My 2FA: `twofold-self --json` as the logged-in user ==== */

const mine = { status: null, busy: false };

function selfStatus() {
    return cockpit.spawn([SELF, "--json", "status"], { err: "message" }).then(text => {
        for (const line of text.split("\n")) {
            if (line.trim()) {
                const event = JSON.parse(line);
                if (event.status)
                    return event.status;
            }
        }
        throw new Error("twofold-self gave no status");
    });
}

function statusList(s) {
    const state = !s.enrolled ? "not set up" : { enabled: "on", disabled: "off", pending: "waiting for its first code" }[s.state] || s.state;
    const trusted = s.trusted.length ? s.trusted.map(t => t.host + " (" + (t.service || "-") + ", until " + t.expires + ")").join(", ") : "none";
    return el("dl", { id: "my-status" },
              el("dt", {}, "User"), el("dd", {}, s.user),
              el("dt", {}, "2FA"), el("dd", { id: "my-state" }, state),
              el("dt", {}, "Required by policy"), el("dd", {}, s.required === null ? "cannot tell" : s.required ? "yes" : "no"),
              el("dt", {}, "Backup codes left"), el("dd", { id: "my-codes-left" }, s.enrolled ? String(s.backup_codes_left) : "-"),
              el("dt", {}, "Trusted computers"), el("dd", {}, trusted),
              el("dt", {}, "Locked"), el("dd", {}, s.locked_until ? "until " + s.locked_until + ": only an administrator can unlock it" : "no"));
}

function myButton(id, label, args) {
    return el("button", { type: "button", id: id, onclick: () => runSelf(args, label) }, label);
}

function myActions(s) {
    const can = action => s.allowed.includes(action);
    const buttons = [];
    if (!s.enrolled && can("enroll"))
        buttons.push(myButton("my-enroll", "Set up 2FA", ["enroll"]));
    if (s.enrolled) {
        if (can("new-phone"))
            buttons.push(myButton("my-new-phone", "New phone", ["new-phone"]));
        if (can("codes"))
            buttons.push(myButton("my-codes", "New backup codes", ["codes", "--regenerate"]));
        if (can("trust") && s.trusted.length)
            buttons.push(myButton("my-trust", "Forget trusted computers", ["trust", "--all"]));
        if (can("disable") && s.state === "enabled")
            buttons.push(myButton("my-disable", "Turn 2FA off", ["disable"]));
        if (can("enable") && s.state === "disabled")
            buttons.push(myButton("my-enable", "Turn 2FA on", ["enable"]));
    }
    return buttons;
}

async function loadMine() {
    const box = byId("mine-status");
    const actions = byId("mine-actions");
    clear(box);
    clear(actions);
    try {
        mine.status = await selfStatus();
    } catch (ex) {
        box.append(el("p", { class: "error" }, failure(ex)));
        return;
    }
    box.append(statusList(mine.status));
    actions.append(...myActions(mine.status));
}

/* One question from PAM or the helper: a one-field form; the answer goes to the helper's
 * standard input and the field is emptied and removed at once. */
function askPrompt(dialog, prompt, hidden, answer) {
    const input = el("input", { id: "my-answer", type: hidden ? "password" : "text",
                                autocomplete: "off", "aria-label": prompt });
    const form = el("form", { class: "prompt" },
                    el("label", { for: "my-answer", id: "my-prompt" }, prompt.trim()),
                    input,
                    el("button", { type: "submit", id: "my-answer-send", class: "primary" }, "Continue"));
    form.addEventListener("submit", event => {
        event.preventDefault();
        const value = input.value;
        input.value = "";
        form.remove();
        answer(value);
    });
    dialog.append(form);
    input.focus();
}

function showKey(dialog, key) {
    const svg = new DOMParser().parseFromString(key.svg, "image/svg+xml").documentElement;
    dialog.append(el("div", { class: "qr", id: "my-qr" }, document.importNode(svg, true)),
                  el("p", {}, "Or type this key into the app: ",
                     el("span", { class: "secret", id: "my-secret" }, key.secret)),
                  el("p", { class: "hint" }, key.algorithm + ", " + key.digits + " digits, a new code every " +
                     key.period + " s, time-based (" + key.issuer + ")."));
}

/* Events of `twofold-self --json`, one JSON object a line (src/bin/twofold-self/machine.rs). */
function selfEvent(dialog, event, proc) {
    if (event.prompt)
        askPrompt(dialog, event.prompt.text, event.prompt.hidden, value => proc.input(value + "\n", true));
    else if (event.key)
        showKey(dialog, event.key);
    else if (event.codes)
        mine.codes = event.codes;
    else if (event.say || event.info)
        dialog.append(el("p", {}, event.say || event.info));
    else if (event.error)
        dialog.append(el("p", { class: "error" }, event.error));
}

function closeDialog() {
    const dialog = byId("mine-dialog");
    clear(dialog);
    hide(dialog, true);
    mine.busy = false;
    loadMine();
}

function runSelf(args, label) {
    if (mine.busy)
        return;
    mine.busy = true;
    mine.codes = null;
    say("mine-message", "");
    const dialog = byId("mine-dialog");
    clear(dialog);
    hide(dialog, false);
    const flow = el("div", { id: "my-flow" });
    dialog.append(el("h2", {}, label), flow);
    let buffer = "";
    const proc = cockpit.spawn([SELF, "--json"].concat(args), { err: "message" });
    proc.stream(data => {
        buffer += data;
        let end;
        while ((end = buffer.indexOf("\n")) >= 0) {
            const line = buffer.slice(0, end);
            buffer = buffer.slice(end + 1);
            if (line.trim())
                selfEvent(flow, JSON.parse(line), proc);
        }
    });
    const cancel = el("button", { type: "button", id: "my-cancel", onclick: () => proc.close("terminated") }, "Cancel");
    dialog.append(el("div", { class: "actions" }, cancel));
    proc.then(() => finishSelf(dialog, label, null))
            .catch(ex => finishSelf(dialog, label, ex));
}

/* The run is over: the dialog (QR code, key, questions) is removed; new codes stay until the
 * user says they saved them. */
function finishSelf(dialog, label, ex) {
    const codes = mine.codes;
    mine.codes = null;
    clear(dialog);
    if (ex) {
        say("mine-message", label + ": " + failure(ex), "error");
        closeDialog();
        return;
    }
    say("mine-message", label + ": done.", "ok");
    if (codes && codes.length)
        showCodes(dialog, mine.status ? mine.status.user : "you", codes, closeDialog);
    else
        closeDialog();
}

/* ==== start ==== */

document.addEventListener("DOMContentLoaded", () => {
    byId("tab-mine").addEventListener("click", () => showView("mine"));
    byId("tab-admin").addEventListener("click", () => showView("admin"));
    byId("filter-user").addEventListener("input", renderUsers);
    byId("filter-state").addEventListener("change", renderUsers);
    byId("admin-refresh").addEventListener("click", () => { loadUsers(); loadCheck() });
    showView(cockpit.location.path[0] === "admin" ? "admin" : "mine");
    watchSuperuser();
    loadMine();
    cockpit.transport.wait(() => document.body.setAttribute("data-ready", "true"));
});
