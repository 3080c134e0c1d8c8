"""The playground in a real headless Chromium (Debian's chromium and chromedriver, driven by Selenium)
against the real server and the tiny model: the whole flow a person walks through, cancel, and every
error shown plainly. Screenshots of each state go to test-artifacts/playground/."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from openveo.core.catalog import Catalog
from tests.e2e.server import Server
from tests.helpers import png_bytes, required

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("OPENVEO_TEST_ARTIFACTS", REPO / "test-artifacts")) / "playground"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        required("Chromium and its driver: apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--window-size=1200,1100",
        "--mute-audio",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def site(tmp_path_factory, tiny_models):
    env = {"OPENVEO_MAX_PROMPT_CHARS": "200", "OPENVEO_RATE_LIMIT_PER_MINUTE": "0"}
    with Server(tmp_path_factory.mktemp("playground"), tiny_models, env=env) as server:
        yield server


class Page:
    """The playground as a person sees it: fields, buttons, and what the page says."""

    def __init__(self, driver, server: Server) -> None:
        self.driver, self.server = driver, server

    def open(self) -> Page:
        """The page as a first-time visitor sees it: no key remembered."""
        self.driver.get(self.server.url + "/")
        self.driver.execute_script("localStorage.clear()")
        self.driver.get(self.server.url + "/")
        return self

    def find(self, element_id: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.ID, element_id)

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def wait(self, condition, timeout: float = 60, what: str = "the page"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.05)
        self.shot("timeout")
        raise AssertionError(
            f"waited {timeout}s for {what}; error shown: {self.error()!r}\n{self.server.log()[-3000:]}"
        )

    def type(self, element_id: str, text: str) -> None:
        field = self.find(element_id)
        field.clear()
        field.send_keys(text)

    def use_key(self, key: str) -> None:
        self.type("api-key", key)
        self.find("save-key").click()

    def error(self) -> str:
        return self.js("const e = document.getElementById('error'); return e.hidden ? '' : e.textContent")

    def status(self) -> str:
        return self.find("job-panel").get_attribute("data-status") or ""

    def credits(self) -> str:
        return self.find("credits").get_attribute("data-credits") or ""

    def choose(self, element_id: str, value: str) -> None:
        from selenium.webdriver.support.select import Select

        self.wait(
            lambda: value in [o.get_attribute("value") for o in Select(self.find(element_id)).options],
            what=f"{value} in #{element_id}",
        )
        Select(self.find(element_id)).select_by_value(value)

    def generate(self, prompt: str) -> None:
        self.type("prompt", prompt)
        self.find("generate").click()

    def shot(self, name: str) -> None:
        """The whole page, below the fold too (Chromium's own capture, through the DevTools protocol)."""
        width, height = self.js("return [document.documentElement.clientWidth, document.body.scrollHeight]")
        clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
        )
        (ARTIFACTS / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))


def test_a_person_makes_a_video_and_sees_it_in_the_history(browser, site):
    page = Page(browser, site).open()
    key = site.new_key(credits=10)
    page.shot("01-start")

    page.use_key("ov-not-a-real-key")
    assert "not accepted" in page.wait(page.error, what="the bad key's error")
    page.shot("02-bad-key")

    page.use_key(key)
    page.wait(lambda: page.credits() == "10", what="the credits")
    assert page.error() == ""
    page.choose("model", "tiny-wan2.2")
    page.choose("duration", "5")
    page.choose("aspect-ratio", "9:16")
    page.find("random-seed").click()
    seed = int(page.find("seed").get_attribute("value"))
    assert 0 <= seed < 2**32
    page.shot("03-ready")

    page.js("""window.seenProgress = [];
        new MutationObserver(() => window.seenProgress.push(document.getElementById('progress').value))
            .observe(document.getElementById('progress'), {attributes: true});""")
    page.generate("a red panda riding a skateboard")
    page.wait(lambda: page.status() in ("queued", "running"), what="the job to start")
    page.shot("04-running")
    page.wait(lambda: page.status() == "succeeded", timeout=120, what="the video")
    seen = page.js("return window.seenProgress")
    assert seen == sorted(seen) and seen[-1] == 100 and any(0 < v < 100 for v in seen), seen

    video = page.wait(
        lambda: page.js("""const v = document.getElementById('result-video');
        if (v.readyState < 1) return null;
        const box = v.getBoundingClientRect();
        return {duration: v.duration, width: v.videoWidth, height: v.videoHeight,
                shownWidth: box.width, shownHeight: box.height, job: v.dataset.jobId};"""),
        what="the video to load",
    )
    fps = Catalog().resolve("tiny").fps
    assert abs(video["duration"] - 5) <= 1 / fps + 0.01, video
    assert video["width"] < video["height"] and video["shownWidth"] < video["shownHeight"]  # 9:16 as 9:16
    page.js("document.getElementById('snippets').open = true")
    page.shot("05-done")

    job = httpx.get(f"{site.url}/v1/jobs/{video['job']}", headers={"x-api-key": key}).json()
    assert job["status"] == "succeeded" and job["videos"][0]["seed"] == seed
    assert (
        job["request"]["aspect_ratio"] == "9:16"
        and job["request"]["prompt"] == "a red panda riding a skateboard"
    )
    for snippet in ("snippet-curl", "snippet-python", "snippet-js"):
        text = page.find(snippet).get_attribute("textContent")
        assert f'"seed":{seed}' in text and site.url in text and "/v1/jobs" in text
    assert page.find("download").get_attribute("href") == job["videos"][0]["url"]

    page.wait(lambda: page.credits() == "9.95", what="the credits to go down")
    card = page.wait(
        lambda: page.js(
            "const c = document.querySelector(`.card[data-job-id='${arguments[0]}']`);"
            "return c && c.dataset.status === 'succeeded' && c.querySelector('img').naturalWidth > 0"
            " && c.textContent",
            video["job"],
        ),
        what="the job in the history with its thumbnail",
    )
    assert "a red panda" in card


def test_a_queued_job_shows_its_place_and_can_be_canceled(browser, site):
    key = site.new_key(credits=10)
    blocker = httpx.post(  # keeps the one worker busy, so the page's job waits in the queue
        f"{site.url}/v1/jobs",
        json={"prompt": "long", "num_videos": 4, "steps": 100, "duration_s": 8},
        headers={"x-api-key": key},
    ).json()
    try:
        page = Page(browser, site).open()
        page.use_key(key)
        page.wait(lambda: page.credits() == "9.68", what="the credits")
        page.choose("model", "tiny-wan2.2")
        page.generate("waiting its turn")
        page.wait(lambda: page.status() == "queued", what="the job to be queued")
        assert page.find("queue-position").text in ("next in line", "1 ahead in the queue")
        page.shot("06-queued")
        page.find("cancel").click()
        page.wait(lambda: page.status() == "canceled", what="the cancel")
        page.wait(lambda: page.credits() == "9.68", what="the refund")
        assert not page.find("cancel").is_displayed()
        page.shot("07-canceled")
    finally:
        httpx.post(f"{site.url}/v1/jobs/{blocker['id']}/cancel", headers={"x-api-key": key})


def test_errors_are_shown_plainly(browser, site, tiny_models, tmp_path):
    page = Page(browser, site).open()
    page.use_key(site.new_key(credits=10))
    page.wait(lambda: page.credits() == "10", what="the credits")
    page.generate("")
    assert "prompt" in page.wait(page.error, what="the empty prompt's error")
    page.generate("a" * 300)
    message = page.wait(lambda: "200" in page.error() and page.error(), what="the long prompt's error")
    assert message.startswith("Please check the form") and "prompt" in message
    page.shot("08-invalid-field")

    page.use_key(site.new_key(credits=0.01))
    page.wait(lambda: page.credits() == "0.01", what="the credits")
    page.generate("too expensive")
    assert "Not enough credits" in page.wait(page.error, what="the credits error")
    page.shot("09-no-credits")

    # A server whose every result write fails: a file sits where the results folder should be.
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "results").write_text("not a folder")
    with Server(tmp_path / "broken", tiny_models, env={"OPENVEO_MAX_ATTEMPTS": "1"}) as broken:
        page = Page(browser, broken).open()
        page.use_key(broken.new_key(credits=1))
        page.wait(lambda: page.credits() == "1", what="the credits")
        page.generate("doomed")
        page.wait(lambda: page.status() == "failed", timeout=120, what="the failure")
        assert "failed and was not charged" in page.error()
        page.wait(lambda: page.credits() == "1", what="the refund")
        page.shot("10-failed")


def test_a_person_picks_one_of_the_operators_loras(browser, site, tiny_loras):
    added = site.cli("loras", "add", "watercolor", str(tiny_loras["style"]), "--model", "tiny-wan2.2")
    assert added.returncode == 0, added.stderr
    assert "rank 4" in added.stdout
    listed = site.cli("loras", "list")
    assert "watercolor" in listed.stdout and "tiny-wan2.2" in listed.stdout
    page = Page(browser, site).open()
    key = site.new_key(credits=10)
    page.use_key(key)
    page.wait(lambda: page.credits() == "10", what="the credits")
    page.choose("model", "tiny-wan2.2")
    page.choose("duration", "5")
    page.choose("lora", "watercolor")
    page.type("lora-scale", "0.5")
    page.shot("12-lora")
    page.generate("a harbour in the rain")
    page.wait(lambda: page.status() == "succeeded", timeout=120, what="the video")
    meta = page.wait(lambda: page.find("result-meta").text, what="the result's description")
    assert "LoRA watercolor ×0.5" in meta
    job_id = page.find("result-video").get_attribute("data-job-id")
    job = httpx.get(f"{site.url}/v1/jobs/{job_id}", headers={"x-api-key": key}).json()
    assert [(u["name"], u["scale"]) for u in job["request"]["loras"]] == [("watercolor", 0.5)]

    removed = site.cli("loras", "remove", "watercolor")
    assert removed.returncode == 0 and "watercolor" not in site.cli("loras", "list").stdout
    page.open().use_key(key)  # with no adapter left for the model, the page shows no LoRA row
    page.wait(lambda: page.find("model").get_attribute("value"), what="the models")
    page.wait(lambda: not page.find("lora-row").is_displayed(), what="the LoRA row to hide")


def test_it_fits_a_phone(browser, site):
    browser.set_window_size(390, 844)
    try:
        page = Page(browser, site).open()
        page.use_key(site.new_key(credits=10))
        page.wait(lambda: page.credits() == "10", what="the credits")
        assert page.js(
            "return document.documentElement.scrollWidth <= window.innerWidth"
        )  # no sideways scroll
        page.shot("11-phone")
    finally:
        browser.set_window_size(1200, 1100)


VACE = "tiny-wan2.1-vace"


@pytest.fixture(scope="module")
def directing_site(tmp_path_factory, tiny_models):
    """Veo's names run tiny-wan2.2; extensions, references and last frames go to tiny VACE."""
    routes = {"extend": VACE, "reference_images": VACE, "last_frame": VACE}
    env = {"OPENVEO_RATE_LIMIT_PER_MINUTE": "0", "OPENVEO_CAPABILITY_MODELS": json.dumps(routes)}
    with Server(tmp_path_factory.mktemp("playground-directing"), tiny_models, env=env) as server:
        # A worker serves one model: VACE gets its own, beside the one `serve` started for tiny.
        log = (server.data_dir / "vace-worker.log").open("ab")
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "openveo.cli",
                "worker",
                "--model",
                VACE,
                "--data-dir",
                str(server.data_dir),
            ],
            env=server.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield server
        finally:
            worker.send_signal(signal.SIGINT)
            worker.wait(timeout=30)
            log.close()


def _inputs(server: Server, job_id: str) -> dict[str, bytes]:
    """The media inputs stored with a job, by name (what the worker will hand the model)."""
    from openveo.store.schema import job_inputs

    db = server.database()
    try:
        with db.read() as conn:
            rows = conn.execute(job_inputs.select().where(job_inputs.c.job_id == job_id)).all()
    finally:
        db.dispose()
    first = server.job_row(job_id).image  # the first frame has a column of its own
    return {row.name: row.data for row in rows} | ({"image": first} if first is not None else {})


def test_a_person_uploads_images_and_extends_a_video_with_one_click(browser, directing_site, tmp_path):
    site = directing_site
    page = Page(browser, site).open()
    key = site.new_key(credits=10)
    page.use_key(key)
    page.wait(lambda: page.credits() == "10", what="the credits")
    page.choose("model", "tiny-wan2.2")  # text or a first frame: no last frame, no references
    shown = {
        name: page.find(f"{name}-field").is_displayed()
        for name in ("first-frame", "last-frame", "references")
    }
    assert shown == {"first-frame": True, "last-frame": False, "references": False}, shown
    page.choose("model", VACE)
    page.wait(lambda: page.find("references-field").is_displayed(), what="the reference images field")
    assert page.find("last-frame-field").is_displayed()
    pictures = {name: png_bytes(120, 90, seed=seed) for seed, name in enumerate(("first", "fox", "hat"))}
    for name, data in pictures.items():
        (tmp_path / f"{name}.png").write_bytes(data)
    page.find("first-frame").send_keys(str(tmp_path / "first.png"))
    page.find("references").send_keys(f"{tmp_path / 'fox.png'}\n{tmp_path / 'hat.png'}")
    page.shot("12-uploads")
    page.generate("a fox and a hat in the snow")
    page.wait(lambda: page.status() == "succeeded", timeout=120, what="the video with references")
    made = page.js("return document.getElementById('result-video').dataset.jobId")
    assert _inputs(site, made) == {
        "image": pictures["first"],
        "reference_images.0": pictures["fox"],
        "reference_images.1": pictures["hat"],
    }
    source = httpx.get(
        httpx.get(f"{site.url}/v1/jobs/{made}", headers={"x-api-key": key}).json()["videos"][0]["url"]
    ).content

    extend = page.find("extend")
    assert extend.is_displayed() and extend.text == "Extend by 4 s"  # tiny VACE adds up to 4 s
    page.type("prompt", "the fox runs off")
    extend.click()
    longer = page.wait(
        lambda: (
            page.status() == "succeeded"
            and page.js(
                "const v = document.getElementById('result-video');"
                "return v.dataset.jobId !== arguments[0] && v.readyState >= 1"
                " && {job: v.dataset.jobId, duration: v.duration}",
                made,
            )
        ),
        timeout=120,
        what="the extended video",
    )
    page.shot("13-extended")
    job = httpx.get(f"{site.url}/v1/jobs/{longer['job']}", headers={"x-api-key": key}).json()
    assert job["model"] == VACE and job["request"]["duration_s"] == 4
    assert job["request"]["prompt"] == "the fox runs off"
    assert _inputs(site, longer["job"]) == {"source_video": source}
    assert abs(longer["duration"] - (41 + 32) / 8) <= 1 / 8 + 0.01  # the source's 41 frames, then 4 s
