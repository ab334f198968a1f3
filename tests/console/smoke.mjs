// Smoke test of a page in headless chromium (scripts/install-browser.sh makes it ready):
//   node tests/console/smoke.mjs [--strict] URL OUT.png
// Opens URL in a 390 x 844 viewport, waits for the load event, checks that document.title is not
// empty, presses Tab twice and prints, one JSON line per press, which element has the focus:
//   {"tab":1,"tag":"a","text":"First link","href":"/a"}
// Then prints one JSON line per CSP violation ({"csp":{...}}), console error ({"consoleError":..})
// and uncaught page error ({"pageError":..}) seen, takes a full-page screenshot to OUT.png and
// prints `ok`. With --strict any of those errors fails the run. Exits 1 with the reason on
// stderr on any failure, 2 on a usage error.
import { launch, newPage, expect, screenshot, watchErrors, focused } from './browser.mjs';

const argv = process.argv.slice(2);
const strict = argv[0] === '--strict';
if (strict) argv.shift();
if (argv.length !== 2) {
  console.error('usage: node tests/console/smoke.mjs [--strict] URL OUT.png');
  process.exit(2);
}
const [url, out] = argv;
const line = (value) => process.stdout.write(JSON.stringify(value) + '\n');

let browser;
try {
  browser = await launch();
  const page = await newPage(browser, { width: 390, height: 844 });
  const errors = await watchErrors(page);

  const response = await page.goto(url, { waitUntil: 'load', timeout: 15_000 });
  expect(response, `no response for ${url}`);
  expect(response.ok(), `${url} answered HTTP ${response.status()}`);

  const title = await page.title();
  expect(title.trim() !== '', `document.title of ${url} is empty`);

  for (const tab of [1, 2]) {
    await page.keyboard.press('Tab');
    const el = await focused(page);
    expect(el && el.tag !== 'body', `after Tab #${tab} nothing has the focus`);
    line({ tab, tag: el.tag, text: el.text, ...(el.href ? { href: el.href } : {}) });
  }

  for (const csp of errors.cspViolations) line({ csp });
  for (const consoleError of errors.consoleErrors) line({ consoleError });
  for (const pageError of errors.pageErrors) line({ pageError });
  if (strict) errors.assertClean();

  await screenshot(page, out);
  console.log('ok');
} catch (err) {
  const message = String(err && err.message ? err.message : err).replace(/\x1b\[[0-9;]*m/g, '');
  console.error(`smoke: ${url}: ${message}`);
  process.exitCode = 1;
} finally {
  if (browser) await browser.close().catch(() => {});
}
