#!/usr/bin/env python3
"""Real-browser test of the dashboard: headless Chromium driven by Selenium.

Starts `securescore serve --demo` on a free loopback port, opens the dashboard URL the server
prints, signs in as the demo user on the server's sign-in page (the authorization-code flow with
PKCE), and checks that the numbers on the page are the API's: the score's current, max and
percentage, and the points of the top-ranked control. With --screenshot PATH it saves the page.
"""

import argparse
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

SUB = "20ff7fc3-e762-44dd-bd96-b71116dcdc23"


def start_server(binary, data_dir, *extra):
    proc = subprocess.Popen(
        [binary, "serve", "--demo", "--memory", "--listen", "127.0.0.1:0", "--data-dir", data_dir, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    url = user = password = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (url and user):
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(r"Dashboard: (https?://\S+)", line)
        if m:
            url = m.group(1)
        m = re.search(r"sign in as user (\S+)\s+password (\S+)", line)
        if m:
            user, password = m.group(1), m.group(2)
    if not (url and user):
        proc.kill()
        sys.exit("the server did not print the dashboard URL and the demo user's credentials")
    return proc, url, user, password


def api(base, ctx, path, token=None, data=None):
    req = urllib.request.Request(base + path, data=data)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
        return json.load(r)


def expected_numbers(base, ctx, data_dir):
    """The API's answers, fetched with the demo service principal's token."""
    with open(os.path.join(data_dir, "demo-credentials.json")) as f:
        creds = json.load(f)
    form = urllib.parse.urlencode({
        "grant_type": "client_credentials",
        "client_id": creds["clientId"],
        "client_secret": creds["clientSecret"],
        "scope": "https://management.azure.com/.default",
    }).encode()
    token = api(base, ctx, f"/{creds['tenantId']}/oauth2/v2.0/token", data=form)["access_token"]
    scope = f"/subscriptions/{SUB}/providers/Microsoft.Security"
    score = api(base, ctx, f"{scope}/secureScores/ascScore?api-version=2020-01-01", token)["properties"]["score"]
    try:
        improvements = api(base, ctx, f"/securescore/v1/subscriptions/{SUB}/improvements", token)["value"]
        top = improvements[0]["potentialScoreIncrease"]["points"]
    except urllib.error.HTTPError as e:
        if e.code != 404:
            raise
        controls = api(base, ctx, f"{scope}/secureScoreControls?api-version=2020-01-01&$expand=definition", token)["value"]
        top = max(round(c["properties"]["score"]["max"] - c["properties"]["score"]["current"], 2) for c in controls)
    return score, top


def num(text):
    return float(text.strip().lstrip("+"))


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--ignore-certificate-errors", "--window-size=1400,1500", "--no-proxy-server"):
        options.add_argument(a)
    service = Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(service=service, options=options)


def shown_score(driver):
    return {
        "current": num(driver.find_element(By.ID, "score-current").text),
        "max": num(driver.find_element(By.ID, "score-max").text),
        "percentage": num(driver.find_element(By.ID, "score-percentage").text),
    }


def wanted_score(score):
    return {
        "current": round(score["current"], 2),
        "max": round(score["max"], 2),
        "percentage": round(score["percentage"] * 100, 2),
    }


def panels_settled(driver):
    """Every panel shows data or a final message (never stuck on Loading…)."""
    for panel in ("changes-panel", "exemptions-panel", "controls-panel", "score-panel"):
        status = driver.find_element(By.CSS_SELECTOR, f"#{panel} [data-status]")
        assert "Loading" not in status.text, f"{panel} is still loading"
        if status.text:
            assert "error" not in (status.get_attribute("class") or ""), f"{panel}: {status.text}"


def emulator_mode(binary, expected):
    """Under --auth any the page needs no sign-in and shows the same numbers."""
    data_dir = tempfile.mkdtemp(prefix="securescore-browser-any-")
    proc, url, _, _ = start_server(binary, data_dir, "--auth", "any")
    driver = None
    try:
        driver = browser()
        driver.get(url)
        WebDriverWait(driver, 60).until(
            lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
        assert not driver.find_element(By.ID, "signin").is_displayed(), "no sign-in under --auth any"
        assert shown_score(driver) == expected, f"--auth any: page {shown_score(driver)}, API {expected}"
        panels_settled(driver)
    finally:
        if driver:
            driver.quit()
        proc.terminate()
        proc.wait(timeout=20)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--binary", default="target/debug/securescore")
    p.add_argument("--screenshot", metavar="PATH", help="save a screenshot of the signed-in page")
    args = p.parse_args()

    data_dir = tempfile.mkdtemp(prefix="securescore-browser-")
    proc, url, user, password = start_server(args.binary, data_dir)
    driver = None
    try:
        base = url.rstrip("/")
        ctx = ssl.create_default_context(cafile=os.path.join(data_dir, "ca.pem"))
        score, top = expected_numbers(base, ctx, data_dir)

        driver = browser()
        # Pages are replaced while the sign-in redirects run: an element found on the page being
        # left goes stale before it is read, so the waits look again instead of failing.
        wait = WebDriverWait(driver, 60, ignored_exceptions=(StaleElementReferenceException, NoSuchElementException))

        driver.get(url)
        # Strict mode: the dashboard asks to sign in; the button goes to the authority's page.
        wait.until(EC.element_to_be_clickable((By.ID, "signin-button"))).click()
        wait.until(EC.presence_of_element_located((By.NAME, "username"))).send_keys(user)
        driver.find_element(By.NAME, "password").send_keys(password)
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

        # Back on the dashboard with a code, traded for a token; the panels load.
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
        assert "code=" not in driver.current_url, "the code must leave the address bar"
        who = driver.find_element(By.ID, "who").text
        assert user in who, f"signed-in user not shown: {who!r}"

        shown, want = shown_score(driver), wanted_score(score)
        assert shown == want, f"page shows {shown}, the API says {want}"
        points = driver.find_elements(By.CSS_SELECTOR, "#controls [data-testid=control-points]")
        assert points, "no control is listed"
        assert num(points[0].text) == round(top, 2), f"top control: page {points[0].text}, API {top}"

        panels_settled(driver)

        # The scope picker offers the resource groups named by the assessments' ids.
        groups = [o.get_attribute("value") for o in driver.find_elements(By.CSS_SELECTOR, "#pick-rg option")]
        assert "demo-rg-00" in groups, f"resource groups offered: {groups}"

        # The top control opens to its recommendations, by keyboard.
        toggle = driver.find_element(By.CSS_SELECTOR, "#controls .control-toggle")
        toggle.send_keys("\n")
        wait.until(lambda d: toggle.get_attribute("aria-expanded") == "true")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#controls .recommendation"))

        if args.screenshot:
            os.makedirs(os.path.dirname(args.screenshot) or ".", exist_ok=True)
            driver.save_screenshot(args.screenshot)
            print(f"screenshot saved to {args.screenshot}")
    finally:
        if driver:
            driver.quit()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    emulator_mode(args.binary, want)
    print(f"browser test passed: score {want}, top control +{top}, also under --auth any")


if __name__ == "__main__":
    main()
