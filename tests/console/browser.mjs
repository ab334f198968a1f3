// Helpers for the web console's browser tests: Debian's chromium driven by npm's playwright-core,
// both made ready by scripts/install-browser.sh (see tests/console/FINDINGS.md).
//
//   import { launch, newPage, expect, waitFor, screenshot, watchErrors, focused } from './browser.mjs';
//
// Environment:
//   CHROMIUM        the browser binary (default /usr/bin/chromium, Debian's launcher script)
//   PLAYWRIGHT_DIR  the playwright-core folder (default <repo>/target/browser/node_modules/playwright-core)
//
// playwright-core is loaded from that absolute folder, so a test script needs no node_modules next
// to it. Nothing here downloads a browser.
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync, mkdirSync } from 'node:fs';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const PLAYWRIGHT_DIR = resolve(
  process.env.PLAYWRIGHT_DIR || join(REPO, 'target', 'browser', 'node_modules', 'playwright-core'),
);
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

// Flags for a headless chromium run as root in a container: no user namespaces for the sandbox,
// no GPU, and a /dev/shm that may be small.
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'];

let playwright;
/** playwright-core's module (its `chromium` is what launches). */
export function loadPlaywright() {
  if (!playwright) {
    const entry = join(PLAYWRIGHT_DIR, 'index.js');
    if (!existsSync(entry)) {
      throw new Error(
        `playwright-core not found at ${PLAYWRIGHT_DIR}: run scripts/install-browser.sh (or set PLAYWRIGHT_DIR)`,
      );
    }
    playwright = createRequire(import.meta.url)(entry);
  }
  return playwright;
}

/** A headless chromium browser; close it with `await browser.close()`. */
export async function launch(options = {}) {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`chromium not found at ${CHROMIUM}: run scripts/install-browser.sh (or set CHROMIUM)`);
  }
  const { args = [], ...rest } = options;
  return loadPlaywright().chromium.launch({
    headless: true,
    executablePath: CHROMIUM,
    args: [...CHROMIUM_ARGS, ...args],
    timeout: 30_000,
    ...rest,
  });
}

/**
 * A page in a context of its own, with a viewport of width x height CSS pixels (default 390 x 844,
 * a phone). Other options go to browser.newContext (e.g. { deviceScaleFactor: 2, locale: 'en-GB' }).
 */
export async function newPage(browser, { width = 390, height = 844, ...contextOptions } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, ...contextOptions });
  return context.newPage();
}

/** Throws an Error with `message` unless `cond` is truthy. */
export function expect(cond, message) {
  if (!cond) throw new Error(message || 'expectation failed');
}

/**
 * Polls `fn` in the page (every 50 ms) until it returns something truthy, and returns that value.
 * Throws after `timeoutMs`. `arg` is passed to `fn` (it must be serialisable).
 */
export async function waitFor(page, fn, timeoutMs = 5_000, arg = undefined) {
  try {
    const handle = await page.waitForFunction(fn, arg, { timeout: timeoutMs, polling: 50 });
    return await handle.jsonValue();
  } catch (err) {
    if (err && err.name === 'TimeoutError') {
      throw new Error(`waitFor: ${String(fn).slice(0, 200)} still false after ${timeoutMs} ms`);
    }
    throw err;
  }
}

/** A full-page PNG screenshot at `path` (its folder is made when missing). */
export async function screenshot(page, path) {
  mkdirSync(dirname(resolve(path)), { recursive: true });
  await page.screenshot({ path, fullPage: true });
  return path;
}

/**
 * Records what should fail a test; await it before page.goto. Fills, as they happen:
 *   consoleErrors    console messages of type error (chromium logs each CSP violation there too,
 *                    as "Refused to execute inline script because it violates ... Content
 *                    Security Policy directive ...")
 *   pageErrors       uncaught exceptions in the page (page.on('pageerror'))
 *   requestFailures  requests that failed at the network level
 *   cspViolations    the page's `securitypolicyviolation` events, from an init script (which the
 *                    page's CSP does not block): { directive, blockedURI, sourceFile, line, sample }
 * `assertClean()` throws an Error listing all of them.
 */
export async function watchErrors(page) {
  const seen = { consoleErrors: [], pageErrors: [], requestFailures: [], cspViolations: [] };
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    seen.consoleErrors.push(text);
  });
  page.on('pageerror', (err) => seen.pageErrors.push(String(err && err.message ? err.message : err)));
  page.on('requestfailed', (req) =>
    seen.requestFailures.push(`${req.method()} ${req.url()}: ${req.failure()?.errorText}`),
  );
  await page.exposeBinding('__mcLedgerCspViolation', (_source, v) =>
    seen.cspViolations.push(v),
  );
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__mcLedgerCspViolation({
        directive: e.effectiveDirective || e.violatedDirective,
        blockedURI: e.blockedURI,
        sourceFile: e.sourceFile,
        line: e.lineNumber,
        sample: e.sample,
      });
    });
  });
  return {
    ...seen,
    assertClean() {
      const problems = [
        ...seen.cspViolations.map(
          (v) => `CSP violation: ${v.directive} blocked ${v.blockedURI || '?'} (${v.sourceFile || '?'}:${v.line})`,
        ),
        // The console line of a CSP violation already listed above says nothing more.
        ...seen.consoleErrors
          .filter((t) => !(seen.cspViolations.length && /Content Security Policy/i.test(t)))
          .map((t) => `console error: ${t}`),
        ...seen.pageErrors.map((e) => `page error: ${e}`),
        ...seen.requestFailures.map((r) => `request failed: ${r}`),
      ];
      if (problems.length) throw new Error(problems.join('\n'));
    },
  };
}

/** What has the focus: { tag, text, role, ariaLabel, id, href } of document.activeElement. */
export async function focused(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!el) return null;
    return {
      tag: el.tagName.toLowerCase(),
      text: (el.innerText || el.value || '').trim().slice(0, 200),
      role: el.getAttribute('role'),
      ariaLabel: el.getAttribute('aria-label'),
      id: el.id || null,
      href: el.getAttribute('href'),
    };
  });
}
