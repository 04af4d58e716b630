"""Files made for people: the adherence chart (PNG), invitation QR codes (PNG), exports (CSV, zip)."""
