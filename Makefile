# Two commands matter: `make demo` and `make test`. Everything else is a step they use.
VENV ?= .venv
PY := $(VENV)/bin/python
# Debian tools the tests and the demo use: independent PDF readers, the OpenSSH client and server
# (the OpenSSH-mode test runs a throwaway sshd on a loopback port),
# Dovecot's IMAP and POP3 servers (the bounce tests run a throwaway one on loopback ports),
# gettext's msgfmt, fonts covering Vietnamese, Chinese, Korean and Arabic for printed cover sheets
# (reportlab embeds only TrueType outlines: Noto CJK is CFF, so cover sheets use WenQuanYi Zen Hei
# for Chinese and Korean; fonts-noto-core has the TrueType Noto Sans Arabic).
APT_TOOLS := qpdf poppler-utils openssh-client openssh-server dovecot-imapd dovecot-pop3d gettext fonts-dejavu-core fonts-noto-cjk fonts-wqy-zenhei fonts-noto-core
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint format system-tools catalogs clean

demo: $(VENV)/.installed system-tools
	$(VENV)/bin/ssr-console demo

test: $(VENV)/.installed system-tools
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -n 2 --dist loadgroup --no-loadscope-reorder -m "not serial"
	$(PY) -m pytest -q -m serial

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $@

system-tools:
	@if command -v qpdf >/dev/null && command -v pdftotext >/dev/null && command -v ssh >/dev/null \
	   && command -v msgfmt >/dev/null && [ -x /usr/sbin/sshd ] && [ -x /usr/sbin/dovecot ] && [ -x /usr/lib/dovecot/pop3 ] \
	   && [ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] \
	   && fc-list 2>/dev/null | grep -q "Noto Sans CJK" \
	   && [ -f /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ] \
	   && [ -f /usr/share/fonts/truetype/noto/NotoSansArabic-Regular.ttf ]; then :; else \
	  $(SUDO) apt-get update -q || true; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y $(APT_TOOLS); fi

# Message catalogs: the parent-facing ones (messages: services/delivery/messages.py and the cover
# sheet) and the coordinators' reminder notices (notices: services/reminders/mail.py); extract the
# ids, merge them into every language's .po (translations kept), compile the .mo files.
LOCALES := services/locale
catalogs: $(VENV)/.installed
	$(VENV)/bin/pybabel extract --no-default-keywords -k N_ -k Np_:1,2 --project=ssr-console \
	  -o $(LOCALES)/messages.pot services/delivery/messages.py services/channels/cover_sheet.py
	$(VENV)/bin/pybabel update -i $(LOCALES)/messages.pot -d $(LOCALES) -D messages -w 100
	$(VENV)/bin/pybabel compile -d $(LOCALES) -D messages --statistics
	$(VENV)/bin/pybabel extract --no-default-keywords -k N_ --project=ssr-console \
	  -o $(LOCALES)/notices.pot services/reminders/mail.py
	$(VENV)/bin/pybabel update -i $(LOCALES)/notices.pot -d $(LOCALES) -D notices -w 100
	$(VENV)/bin/pybabel compile -d $(LOCALES) -D notices --statistics

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache
