# Shortcuts for scripts/dev.py (which needs only Python).
.PHONY: demo test setup
demo:
	python3 scripts/dev.py demo
test:
	python3 scripts/dev.py test
setup:
	python3 scripts/dev.py setup
