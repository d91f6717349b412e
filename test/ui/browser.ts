import { existsSync } from 'node:fs'
import { chromium, type Browser, type Page } from 'playwright-core'

// The browser of the UI tests: Debian's chromium, driven by playwright-core through
// executablePath (nothing downloads a browser). Not a test file: the runner runs *.test.js only.

interface Teardown { teardown: (fn: () => unknown) => void }

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
// CI must have the browser: there a missing one fails instead of skipping.
export const noBrowser = !existsSync(CHROMIUM) && process.env.CI === undefined
  ? `no browser at ${CHROMIUM} (apt-get install chromium; .ci/run installs it)`
  : false

export async function launch (t: Teardown): Promise<Browser> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] })
  t.teardown(() => browser.close())
  return browser
}

// A page at url, with every page error and console error it sees in problems.
export async function open (t: Teardown, browser: Browser, url: string): Promise<{ page: Page, problems: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  t.teardown(() => page.close())
  const problems: string[] = []
  page.on('pageerror', err => { problems.push(`page error: ${err.message}`) })
  // with the URL: a "Failed to load resource" error names no request itself
  page.on('console', msg => { if (msg.type() === 'error') problems.push(`console error: ${msg.text()} (${msg.location().url})`) })
  await page.goto(url)
  return { page, problems }
}
