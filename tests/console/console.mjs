// The console in real headless Chromium (SPEC §11), run by tests/console_browser.rs:
//   node tests/console/console.mjs OPEN_URL TOKEN_URL TOKENS_JSON SHOTS_DIR
// OPEN_URL serves the demo ledger without tokens; TOKEN_URL a ledger with tokens, whose
// secrets TOKENS_JSON names ({"write": …, "read": …}). Screenshots go to SHOTS_DIR. Prints one
// line per check; any failure throws (non-zero exit, the reason on stderr).
import { launch, newPage, expect, waitFor, screenshot, watchErrors, focused } from './browser.mjs';

const [openUrl, tokenUrl, tokensJson, shots] = process.argv.slice(2);
const tokens = JSON.parse(tokensJson);
const ok = (what) => console.log(`ok ${what}`);

async function api(base, method, path, body, token) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const r = await fetch(base + path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const text = await r.text();
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return JSON.parse(text);
}
const as = (kind) => ({ actor: { name: kind === 'validator' ? 'validator' : 'luci', kind } });

// The event stream is cut on every navigation; that is not an error.
function clean(watch) {
  watch.requestFailures.splice(
    0,
    watch.requestFailures.length,
    ...watch.requestFailures.filter((f) => !/\/v1\/events\/stream/.test(f)),
  );
  watch.assertClean();
}

async function page(browser, width = 1280, height = 900) {
  const p = await newPage(browser, { width, height });
  const watch = await watchErrors(p);
  p.on('dialog', (d) => {
    if (d.type() === 'confirm') return d.accept();
    throw new Error(`unexpected ${d.type()} dialog: ${d.message()}`);
  });
  return { p, watch };
}

const alerts = (p) => p.locator('[role=alert]').count();

const browser = await launch();
try {
  // The demo board: columns, the alerts, no CSP violation, nothing inline.
  {
    const { p, watch } = await page(browser);
    await p.goto(openUrl + '/');
    expect((await p.title()).includes('Board'), 'board title');
    for (const column of ['Open', 'In progress', 'Review', 'Done']) {
      expect(await p.getByRole('heading', { name: new RegExp(`^${column}`) }).count(), `column ${column}`);
    }
    await waitFor(p, () => document.getElementById('live-status').textContent === 'Live.', 5000);
    await screenshot(p, `${shots}/board.png`);
    clean(watch);
    ok('board');
  }

  // MC-4502: done, no banner; as of its reap, the banner with the event that raised it.
  {
    const { p, watch } = await page(browser);
    await p.goto(openUrl + '/tickets/MC-4502');
    expect((await alerts(p)) === 0, 'a done ticket has no banner');
    expect(await p.getByRole('heading', { name: 'Ticket', exact: true }).count(), 'Ticket part');
    expect(await p.getByRole('heading', { name: 'Runtime', exact: true }).count(), 'Runtime part');
    expect(await p.getByRole('heading', { name: 'Live', exact: true }).count(), 'Live part');
    expect((await p.locator('table.timeline').count()) === 1, 'the raw feed appears once');
    await screenshot(p, `${shots}/ticket-mc-4502.png`);
    const { timeline } = await api(openUrl, 'GET', '/v1/tickets/MC-4502/timeline');
    const reap = timeline.find((e) => e.event.type === 'runtime.reaped');
    await p.goto(`${openUrl}/tickets/MC-4502?as_of=${reap.event.position}`);
    expect((await alerts(p)) === 1, 'as of the reap: one banner');
    const banner = await p.locator('[role=alert]').innerText();
    expect(banner.includes('tmux_session_missing') && banner.includes('runtime.reaped'), `banner: ${banner}`);
    await p.getByRole('link', { name: 'Next event' }).click();
    await p.waitForURL(/as_of=/);
    expect(new URL(p.url()).searchParams.get('as_of') > String(reap.event.position), 'next steps forward');
    await p.getByRole('link', { name: 'Previous event' }).click();
    await p.waitForURL(new RegExp(`as_of=${reap.event.position}$`));
    await screenshot(p, `${shots}/ticket-mc-4502-as-of-reap.png`);
    clean(watch);
    ok('MC-4502 done without a banner; as of its reap with one; stepping');
  }

  // Live: a banner appears and disappears without a reload.
  {
    await api(openUrl, 'POST', '/v1/tickets', { id: 'MC-900', title: 'Live banner', ...as('orchestrator') });
    const d = await api(openUrl, 'POST', '/v1/tickets/MC-900/dispatch', {
      dispatch_key: 'k', agent: 'claude', transport: 'tmux', tmux_target: 'mc-900', ...as('orchestrator'),
    });
    const { p, watch } = await page(browser);
    await p.goto(openUrl + '/tickets/MC-900');
    await waitFor(p, () => document.getElementById('live-status').textContent === 'Live.', 5000);
    await p.evaluate(() => { window.__notReloaded = true; });
    expect((await alerts(p)) === 0, 'no banner yet');
    let t0 = Date.now();
    await api(openUrl, 'POST', `/v1/runtimes/${d.runtime_id}/reap`, { cause: 'tmux_missing', ...as('system') });
    await waitFor(p, () => document.querySelectorAll('[role=alert]').length === 1, 2000);
    const appeared = Date.now() - t0;
    await screenshot(p, `${shots}/ticket-live-banner.png`);
    t0 = Date.now();
    await api(openUrl, 'POST', '/v1/tickets/MC-900/close', { resolution: 'done', ...as('validator') });
    await waitFor(p, () => document.querySelectorAll('[role=alert]').length === 0, 2000);
    const gone = Date.now() - t0;
    expect(await p.evaluate(() => window.__notReloaded === true), 'changed in place, not reloaded');
    clean(watch);
    ok(`live banner: appeared after ${appeared} ms, gone after the close in ${gone} ms`);
  }

  // Hostile text stays text.
  {
    const hostile = '<script>alert(1)</script><img src=x onerror=alert(2)>';
    await api(openUrl, 'POST', '/v1/tickets', { id: 'MC-901', title: hostile, ...as('orchestrator') });
    await api(openUrl, 'POST', '/v1/tickets/MC-901/comments', { body: '<b onmouseover=alert(3)>hi</b>', ...as('orchestrator') });
    const { p, watch } = await page(browser);
    await p.goto(openUrl + '/tickets/MC-901');
    const h1 = await p.locator('h1').innerText();
    expect(h1.includes(hostile), `the title shows as text: ${h1}`);
    expect((await p.locator('main script, main img, main b').count()) === 0, 'no markup from events');
    expect((await p.locator('script').count()) === 1, 'only the console script');
    await p.goto(openUrl + '/');
    expect((await p.locator('main script, main img').count()) === 0, 'board: no markup from events');
    clean(watch);
    ok('hostile titles and comments are escaped');
  }

  // 390 px: nothing wider than the screen; the keyboard reaches everything in order.
  {
    const { p, watch } = await page(browser, 390, 844);
    await p.goto(openUrl + '/');
    const width = await p.evaluate(() => document.documentElement.scrollWidth);
    expect(width <= 390, `board fits 390 px (scrollWidth ${width})`);
    await screenshot(p, `${shots}/board-390.png`);
    await p.goto(openUrl + '/tickets/MC-4502');
    const ticketWidth = await p.evaluate(() => document.documentElement.scrollWidth);
    expect(ticketWidth <= 390, `ticket page fits 390 px (scrollWidth ${ticketWidth})`);
    await screenshot(p, `${shots}/ticket-390.png`);
    await p.keyboard.press('Tab');
    let f = await focused(p);
    expect(f.text === 'Skip to content', `first Tab: the skip link, got ${JSON.stringify(f)}`);
    await p.keyboard.press('Enter');
    f = await focused(p);
    expect(f.id === 'main', `the skip link moves the focus to main, got ${JSON.stringify(f)}`);
    await p.goto(openUrl + '/');
    const order = [];
    for (let i = 0; i < 6; i++) {
      await p.keyboard.press('Tab');
      order.push((await focused(p)).text);
    }
    expect(order.slice(1, 5).join('|') === 'Board|Runtimes|Alerts|Event log', `Tab order: ${order}`);
    await p.keyboard.press('Shift+Tab');
    await p.keyboard.press('Shift+Tab');
    await p.keyboard.press('Enter');
    await p.waitForURL(/\/alerts$/);
    await screenshot(p, `${shots}/alerts.png`);
    clean(watch);
    ok(`390 px and keyboard (Tab order ${order.join(' → ')})`);
  }

  // Runtimes and the event log pages render; an action behind a confirmation (loopback).
  {
    const { p, watch } = await page(browser);
    await p.goto(openUrl + '/runtimes');
    expect(await p.getByRole('heading', { name: 'Runtimes' }).count(), 'runtimes page');
    await screenshot(p, `${shots}/runtimes.png`);
    await p.goto(openUrl + '/events');
    expect((await p.locator('tbody tr').count()) > 10, 'event log rows');
    await screenshot(p, `${shots}/events.png`);
    await p.goto(openUrl + '/tickets/MC-4030');
    await waitFor(p, () => document.getElementById('live-status').textContent === 'Live.', 5000);
    await p.fill('#comment-body', 'Looked at this from the console.');
    await p.getByRole('button', { name: 'Comment', exact: true }).click();
    await waitFor(p, () => document.body.innerText.includes('Looked at this from the console.'), 2000);
    clean(watch);
    ok('runtimes, event log, a confirmed comment');
  }

  // Subscriptions: a receiver that is not there shows its last error; pause and resume, each
  // behind a confirmation, change its state.
  {
    const { p, watch } = await page(browser);
    await api(openUrl, 'POST', '/v1/subscriptions', { name: 'nowhere', url: 'http://127.0.0.1:9/hook', ...as('human') });
    await api(openUrl, 'POST', '/v1/tickets/MC-4030/comments', { body: 'for the subscription', ...as('human') });
    await p.goto(openUrl + '/subscriptions');
    expect(await p.getByRole('heading', { name: 'Subscriptions', exact: true }).count(), 'subscriptions page');
    const row = '#subscriptions tr[data-subscription=nowhere]';
    for (let i = 0; i < 50; i++) {
      if ((await p.locator(`${row} td.error`).innerText()).includes('connection')) break;
      await p.waitForTimeout(200);
      await p.reload();
    }
    const error = await p.locator(`${row} td.error`).innerText();
    expect(error.includes('connection'), `the last error shows: ${error}`);
    expect((await p.locator(`${row} td.state`).getAttribute('data-state')) === 'active', 'active');
    await screenshot(p, `${shots}/subscriptions.png`);
    await p.getByRole('button', { name: 'Pause', exact: true }).click();
    await waitFor(p, () => document.querySelector('#subscriptions tr[data-subscription=nowhere] td.state').dataset.state === 'paused', 3000);
    await p.getByRole('button', { name: 'Resume', exact: true }).click();
    await waitFor(p, () => document.querySelector('#subscriptions tr[data-subscription=nowhere] td.state').dataset.state === 'active', 3000);
    const width = await p.evaluate(() => document.documentElement.scrollWidth);
    clean(watch);
    ok(`subscriptions: last error, confirmed pause and resume (page width ${width})`);
  }

  // With tokens: a sign-in form; a write token sees actions, a read token none.
  {
    const { p, watch } = await page(browser);
    await p.goto(tokenUrl + '/tickets/MC-1');
    expect(await p.getByRole('heading', { name: 'Sign in' }).count(), 'asks for a token');
    expect(!(await p.locator('main').innerText()).includes('Token ticket'), 'shows no data before');
    await p.fill('#token', tokens.read);
    await p.getByRole('button', { name: 'Use token' }).click();
    await waitFor(p, () => document.querySelector('h1') && document.querySelector('h1').textContent.includes('MC-1'), 3000);
    expect((await p.locator('form.action').count()) === 0, 'a read token gets no actions');
    await p.reload();
    await waitFor(p, () => document.querySelector('h1') && document.querySelector('h1').textContent.includes('MC-1'), 3000);
    ok('token kept for the tab: a reload stays signed in');
    await p.getByRole('button', { name: 'Forget token' }).click();
    await waitFor(p, () => !!document.getElementById('token-form'), 3000);
    await p.fill('#token', tokens.write);
    await p.getByRole('button', { name: 'Use token' }).click();
    await waitFor(p, () => document.querySelectorAll('form.action').length > 0, 3000);
    const forms = await p.locator('form.action').evaluateAll((fs) => fs.map((f) => f.id));
    expect(forms.includes('comment') && forms.includes('close'), `an orchestrator's actions: ${forms}`);
    await screenshot(p, `${shots}/ticket-signed-in.png`);
    await p.fill('#comment-body', 'Signed-in comment.');
    await p.getByRole('button', { name: 'Comment', exact: true }).click();
    await waitFor(p, () => document.body.innerText.includes('Signed-in comment.'), 2000);
    clean(watch);
    ok(`tokens: sign-in, read-only, orchestrator actions (${forms.join(', ')})`);
  }
} finally {
  await browser.close();
}
console.log('all console checks passed');
