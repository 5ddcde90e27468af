// Package webtest tests the gateway's web UI in a real browser: Chromium,
// driven over the DevTools protocol by chromedp, against a whole pipeline
// running in the test's process. It holds tests only.
package webtest
