"""Drives the web Q&A page in headless Chromium (Debian's, through Playwright's
protocol driver; no browser is downloaded): load the page, pick a collection,
ask a question, check that real results render with document text (the query's
words marked), metadata as a table and score, rate one, apply a filter from the
facets, follow the search's shareable URL in a fresh page and compare the two
pages' structure (not pixels), ask for more results, and save screenshots.

    python tools/python/test_web_page.py --url http://127.0.0.1:8080 --collection NAME \
        --question "..." --expect-id ID --screenshot artifacts/web-page.png
"""
import argparse
import json
import os

from playwright.sync_api import sync_playwright
from checks import check


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--collection", required=True)
    ap.add_argument("--question", required=True)
    ap.add_argument("--expect-id", required=True, help="an id that must be among the rendered results")
    ap.add_argument("--screenshot", required=True)
    ap.add_argument("--filter-field", default="section", help="a low-cardinality metadata field to filter by")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--expect-panel", help="text the status panel must come to show (a running ingest's progress)")
    a = ap.parse_args()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=a.chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(a.url + "/")
        page.wait_for_selector(f"#collection option[value='{a.collection}']", state="attached", timeout=15000)
        page.select_option("#collection", a.collection)
        page.fill("#question", a.question)
        page.click("button[type=submit]")
        page.wait_for_selector("li.result", timeout=15000)
        items = page.query_selector_all("li.result")
        check(len(items) > 0, "results rendered")
        ids = [i.get_attribute("data-id") for i in items]
        check(a.expect_id in ids, f"{a.expect_id} among rendered results {ids}")
        first = items[0]
        check(first.query_selector(".doc").inner_text().strip() != "", "document text shown")
        check("score" in first.query_selector(".score").inner_text(), "score shown")
        check(first.query_selector("table.meta td") is not None, "metadata shown as a table")
        check(len(page.query_selector_all("li.result .doc mark")) > 0, "the query's words are marked")
        check("records in" in page.inner_text("#panel") and "engine ready" in page.inner_text("#panel"), "status panel")
        if a.expect_panel:
            try:
                page.wait_for_function("text => document.getElementById('panel').innerText.includes(text)", arg=a.expect_panel,
                                       timeout=15000)
            except Exception:
                check(False, f"status panel shows {a.expect_panel!r}: {page.inner_text('#panel')!r}")
        check("results in" in page.inner_text("#status"), "status line")
        first.query_selector("button[data-rating='1']").click()
        page.wait_for_selector("li.result .rate .done", timeout=10000)
        check("Thanks" in first.query_selector(".rate").inner_text(), "feedback accepted")
        os.makedirs(os.path.dirname(os.path.abspath(a.screenshot)), exist_ok=True)
        page.screenshot(path=a.screenshot, full_page=True)

        # A filter from the facets: every result then holds the chosen value, and the URL says so.
        facet = page.wait_for_selector(f"#filters fieldset[data-field='{a.filter_field}'] input[type=checkbox]", timeout=15000)
        chosen = json.loads(facet.get_attribute("value"))
        facet.check()
        page.wait_for_function("new URLSearchParams(location.search).has('f') && document.querySelectorAll('li.result').length > 0"
                               " && !document.getElementById('status').textContent.startsWith('Searching')", timeout=15000)
        page.wait_for_selector(f"#filters fieldset[data-field='{a.filter_field}'] input[type=checkbox]:checked", timeout=15000)
        values = page.eval_on_selector_all(
            "li.result table.meta tr",
            f"rows => rows.filter(r => r.querySelector('th').textContent === '{a.filter_field}').map(r => r.querySelector('td').textContent)")
        filtered_ids = [i.get_attribute("data-id") for i in page.query_selector_all("li.result")]
        check(len(values) == len(filtered_ids) and all(v == str(chosen) for v in values),
              f"every result has {a.filter_field} = {chosen}: {values}")
        shared = page.url
        check("q=" in shared and "f=" in shared, f"the search is in the URL: {shared}")

        # The shared URL in a fresh page: the same search, filters and results, and the same structure.
        other = browser.new_page(viewport={"width": 1100, "height": 900})
        other.on("pageerror", lambda e: errors.append(str(e)))
        other.goto(shared)
        other.wait_for_selector("li.result", timeout=15000)
        other.wait_for_selector(f"#filters fieldset[data-field='{a.filter_field}'] input[type=checkbox]:checked", timeout=15000)
        check([i.get_attribute("data-id") for i in other.query_selector_all("li.result")] == filtered_ids, "same results from the URL")
        check(other.input_value("#question") == a.question, "the question is restored")
        def structure(p):
            return p.evaluate("""() => ({
                results: document.querySelectorAll('li.result').length,
                fieldsets: [...document.querySelectorAll('#filters fieldset')].map(f => f.dataset.field),
                rows: [...document.querySelectorAll('li.result')].map(r => r.querySelectorAll('table.meta tr').length),
                checked: document.querySelectorAll('#filters input:checked').length})""")
        check(structure(other) == structure(page), f"same structure: {structure(other)} vs {structure(page)}")
        other.screenshot(path=a.screenshot.replace(".png", "-shared.png"), full_page=True)
        other.close()

        # More results: the next page of the same search (the filter dropped so there are more).
        facet = page.query_selector(f"#filters fieldset[data-field='{a.filter_field}'] input[type=checkbox]:checked")
        facet.uncheck()
        page.wait_for_function("!new URLSearchParams(location.search).has('f') && document.querySelectorAll('li.result').length > 0", timeout=15000)
        before = len(page.query_selector_all("li.result"))
        page.click("#more")
        page.wait_for_function(f"document.querySelectorAll('li.result').length > {before}", timeout=15000)
        check("k=16" in page.url, f"the longer list is in the URL too: {page.url}")

        # A phone: nothing wider than the screen, the filters above the results.
        phone = browser.new_page(viewport={"width": 390, "height": 844})
        phone.on("pageerror", lambda e: errors.append(str(e)))
        phone.goto(shared)
        phone.wait_for_selector("li.result", timeout=15000)
        phone.wait_for_selector("#filters fieldset", timeout=15000)
        check(phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), "no sideways scrolling on a phone")
        check(phone.evaluate("document.querySelector('#filters').getBoundingClientRect().bottom <= "
                             "document.querySelector('li.result').getBoundingClientRect().top"), "filters above the results on a phone")
        phone.screenshot(path=a.screenshot.replace(".png", "-phone.png"), full_page=False)
        phone.close()

        # Keyboard: the question box submits with Enter.
        page.fill("#question", a.question)
        page.press("#question", "Enter")
        page.wait_for_selector("li.result", timeout=15000)

        # Chat mode: an answer with sources, a follow-up, and the conversation kept across a reload (per session).
        page.check("input[name=mode][value=chat]")
        page.fill("#question", a.question)
        page.click("button[type=submit]")
        page.wait_for_selector("#chat li.turn.assistant", timeout=15000)
        answer = page.query_selector("#chat li.turn.assistant")
        check(answer.inner_text().strip() != "", "chat answer shown")
        check(answer.query_selector(".sources") is not None, "chat answer lists its sources")
        page.fill("#question", "tell me more")
        page.click("button[type=submit]")
        page.wait_for_function("document.querySelectorAll('#chat li.turn.assistant').length == 2", timeout=15000)
        page.reload()
        page.wait_for_selector(f"#collection option[value='{a.collection}']", state="attached", timeout=15000)
        page.select_option("#collection", a.collection)
        page.check("input[name=mode][value=chat]")
        page.wait_for_function("document.querySelectorAll('#chat li.turn').length == 4", timeout=15000)
        chat_shot = a.screenshot.replace(".png", "-chat.png")
        page.screenshot(path=chat_shot, full_page=True)
        page.click("#new-chat")
        check(len(page.query_selector_all("#chat li.turn")) == 0, "a new conversation starts empty")
        check(not errors, f"no JavaScript errors: {errors}")
        browser.close()
    print(f"web page: all checks passed; screenshot at {a.screenshot}")


if __name__ == "__main__":
    main()
