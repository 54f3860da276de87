"""Real-browser tests of the tenancy admin (headless Chromium through Selenium)."""
