// The Node side of a browser benchmark page (www/bench/*.html): open it in
// the harness's Chromium (www/tests/harness.mjs `launchChromium`), wait for
// the page to set `window.benchResult.done`, and hand back that result. A run
// fails (throws) on the page's own `error`, an uncaught page error or a
// console error: a page that logged one has not measured what it says.

/**
 * Opens `url` in a new page of `browser.context` and resolves with the page's
 * `window.benchResult` once it is `done`.
 * @param {{ context: import('playwright-core').BrowserContext }} browser
 * @param {string} url
 * @param {{ timeoutMs: number, onTimeout?: (page: import('playwright-core').Page) => Promise<string> }} options
 *   `onTimeout` says where the page was, appended to the timeout's message.
 */
export async function benchPageResult(browser, url, { timeoutMs, onTimeout }) {
  const page = await browser.context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && problems.push(`console error: ${m.text()}`));
  await page.goto(url);
  await page.waitForFunction(() => window.benchResult?.done, null, { timeout: timeoutMs, polling: 250 }).catch(async (e) => {
    throw onTimeout ? new Error(`${e.message}; ${await onTimeout(page)}`) : e;
  });
  const r = await page.evaluate(() => window.benchResult);
  if (r.error || problems.length) throw new Error([r.error, ...problems].filter(Boolean).join('; '));
  return r;
}
