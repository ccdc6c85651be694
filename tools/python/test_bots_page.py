#!/usr/bin/env python3
"""The page's Bots view in headless Chromium, against `sextant up` with the bot
gateway and a Telegram stand-in (telegram_standin.py): the API key asked for
once, a bot added with its token (which never comes back), running, answering
a user's message, its conversation shown, edited, stopped, started, removed.

usage: test_bots_page.py --url API --telegram STANDIN --key KEY --collection C --screenshot PNG
"""
import argparse
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request

from checks import check
from playwright.sync_api import sync_playwright

ap = argparse.ArgumentParser()
ap.add_argument("--url", required=True)
ap.add_argument("--telegram", required=True)
ap.add_argument("--key", required=True)
ap.add_argument("--collection", required=True)
ap.add_argument("--screenshot", required=True)
ap.add_argument("--chromium", default="/usr/bin/chromium")
a = ap.parse_args()
TOKEN = "4242:page-secret-token"


def standin(path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(a.telegram + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def until(condition, what, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    check(False, what)


standin("/control/bots", {"token": TOKEN, "username": "kb_page_bot"})

# Without the key the bots routes answer 401.
try:
    urllib.request.urlopen(a.url + "/v1/bots", timeout=10)
    check(False, "GET /v1/bots without the key is refused")
except urllib.error.HTTPError as error:
    check(error.code == 401, f"GET /v1/bots without the key: {error.code}")

with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=a.chromium, headless=True, args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    prompts = []

    def dialog(d):
        prompts.append(d.type)
        d.accept(a.key) if d.type == "prompt" else d.accept()
    page.on("dialog", dialog)
    page.goto(a.url + "/")
    page.wait_for_selector(f"#collection option[value='{a.collection}']", state="attached", timeout=15000)
    page.check("input[name=mode][value=bots]")
    page.wait_for_function("document.getElementById('bots-status').innerText.includes('No bots yet')", timeout=15000)
    check(prompts == ["prompt"], f"the key was asked for once: {prompts}")

    page.fill("#bot-name", "helpdesk")
    page.select_option("#bot-platform", "telegram")
    page.fill("#bot-token", TOKEN)
    page.select_option("#bot-collection", a.collection)
    page.fill("#bot-prompt", "Answer from the knowledge base.")
    page.click("#bot-save")
    page.wait_for_selector("tr[data-bot=helpdesk]", timeout=15000)
    check(page.input_value("#bot-token") == "", "the token field is emptied after saving")

    def row_text():
        page.evaluate("loadBots()")
        page.wait_for_timeout(200)
        row = page.query_selector("tr[data-bot=helpdesk]")
        return row.inner_text() if row else ""
    until(lambda: "running" in row_text(), "the bot runs")
    check(TOKEN not in page.content(), "the token is never shown")
    listed = page.evaluate("botsFetch('/v1/bots').then(r => r.text())")
    check(TOKEN not in listed and "page-secret" not in listed, "the API never returns the token")

    # A user writes to the bot; it answers from the collection.
    standin("/control/message", {"token": TOKEN, "chat_id": 77, "text": "command line tool for transferring data with URL syntax"})
    until(lambda: standin(f"/control/sent?token={urllib.parse.quote(TOKEN)}")["sent"], "the bot answered on Telegram")
    def answered():
        bots = json.loads(page.evaluate("botsFetch('/v1/bots').then(r => r.text())"))
        return bots and bots[0]["messages_answered"] == 1
    until(answered, "one message answered", 20)
    row_text()
    check(page.inner_text("tr[data-bot=helpdesk] td:nth-child(4)").strip() == "1", "the page shows one message answered")
    page.click("tr[data-bot=helpdesk] button[data-action=conversations]")
    page.wait_for_selector("#bot-turns li.bot-turn", timeout=10000)
    turns = page.inner_text("#bot-turns")
    check("transferring data" in turns and "in chat 77" in turns, f"the conversation is shown: {turns[:300]}")

    # Edit, stop, start, remove.
    page.click("tr[data-bot=helpdesk] button[data-action=edit]")
    check(page.input_value("#bot-name") == "helpdesk" and page.input_value("#bot-token") == "", "edit shows the settings, not the token")
    page.fill("#bot-prompt", "Answer briefly.")
    page.click("#bot-save")
    try:
        page.wait_for_function("document.getElementById('bots-status').innerText.includes('helpdesk saved')", timeout=10000)
    except Exception:
        check(False, f"the edit is saved: {page.inner_text('#bots-status')!r}")
    page.click("tr[data-bot=helpdesk] button[data-action=stop]")
    until(lambda: "stopped" in row_text(), "the bot stops")
    page.click("tr[data-bot=helpdesk] button[data-action=start]")
    until(lambda: "running" in row_text(), "the bot starts again")
    os.makedirs(os.path.dirname(os.path.abspath(a.screenshot)), exist_ok=True)
    page.screenshot(path=a.screenshot, full_page=True)
    page.click("tr[data-bot=helpdesk] button[data-action=remove]")
    page.wait_for_function("!document.querySelector('tr[data-bot=helpdesk]')", timeout=10000)
    check(not errors, f"no script errors: {errors}")
    browser.close()
print("all checks passed")
