import { existsSync } from 'node:fs';
import { defineConfig } from '@playwright/test';

// Playwright cannot download its browsers on our machines: use Debian's Chromium
// (apt-get install -y chromium), or CHROMIUM_PATH; elsewhere fall back to Playwright's own.
const chromium = process.env.CHROMIUM_PATH ?? (existsSync('/usr/bin/chromium') ? '/usr/bin/chromium' : undefined);

export default defineConfig({
  testDir: 'e2e',
  testMatch: '*.spec.ts',
  // Builds the packages and the Vite test app; servers are fixtures (e2e/fixtures.ts).
  globalSetup: './e2e/global-setup.ts',
  fullyParallel: false,
  workers: 1,
  forbidOnly: true,
  retries: 0,
  timeout: 30_000,
  // The whole browser run, setup included, is bounded.
  globalTimeout: 6 * 60_000,
  expect: { timeout: 10_000 },
  outputDir: '.tmp/playwright-results',
  reporter: [['list'], ['json', { outputFile: '.tmp/playwright.json' }]],
  use: {
    headless: true,
    actionTimeout: 10_000,
    navigationTimeout: 10_000,
    launchOptions: {
      ...(chromium ? { executablePath: chromium } : {}),
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        // WebRTC between two pages (e2e/direct.spec.ts) on a host whose only interface is
        // loopback: Chromium gathers loopback candidates only with this flag, and only once the
        // page may use media (it then gathers on every interface, not just the default route's,
        // which a loopback-only host lacks). The pages ask for a microphone first
        // (e2e/app/direct.ts); these two grant it without a prompt or a device.
        '--allow-loopback-in-peer-connection',
        '--use-fake-ui-for-media-stream',
        '--use-fake-device-for-media-stream',
      ],
    },
  },
});
