# Postern — `make run` and `make test` are all a user needs; `make` alone lists the targets.

CARGO ?= cargo
CARGO_TARGET_DIR ?= target
# Same lookup as posternd: $POSTERN_CONFIG, else the per-user config directory.
CONFIG := $(or $(POSTERN_CONFIG),$(or $(XDG_CONFIG_HOME),$(HOME)/.config)/org.postern.Postern/postern.toml)

.DEFAULT_GOAL := help
.PHONY: help build run package test test-deps lint bench fuzz

# The desktop app's frontend; npm ci only when the lock file changed.
UI_DEPS := ui/node_modules/.package-lock.json
$(UI_DEPS): ui/package.json ui/package-lock.json
	cd ui && npm ci --no-audit --no-fund
	@touch $@

help:
	@echo "Postern — make targets:"
	@echo "  make run     install what is missing, build and start the tray app postern"
	@echo "               (\$$POSTERN_CONFIG or $(CONFIG); without one it opens the setup wizard)"
	@echo "  make test    install test dependencies (Postfix, dnsmasq, ...; needs root or sudo),"
	@echo "               build, and run every test against real peers"
	@echo "  make build   release build: the UI, the tray app postern, its windows postern-window"
	@echo "               and posternd"
	@echo "  make package the .deb: the tray app and its windows, posternd and its systemd unit"
	@echo "               (via npm's @tauri-apps/cli)"
	@echo "  make lint    rustfmt check, no import circles between files, clippy -D warnings"
	@echo "  make bench   measure Postern beside Postfix and smtp-sink, and the desktop app"
	@echo "               (root, ~8 min); writes BENCHMARKS.md"
	@echo "  make fuzz    fuzz every target (cargo-fuzz, installed when missing) for FUZZ_SECONDS"
	@echo "               each (default 300), or FUZZ_RUNS executions each; docs/reliability.md"

build: $(UI_DEPS)
	cd ui && npm run build
	$(CARGO) build --release
	$(CARGO) build --release -p postern
	$(CARGO) build --release -p postern-window --features custom-protocol

run:
	@bash scripts/install-test-deps.sh --desktop
	@$(MAKE) --no-print-directory build
	$(CARGO_TARGET_DIR)/release/postern $(if $(POSTERN_CONFIG),--config "$(POSTERN_CONFIG)")

# tauri build runs `npm run build` in ui/ itself (beforeBuildCommand) and cargo through $(CARGO)
# for the window process postern-window. The .deb also ships the tray process postern (what its
# desktop entry, packaging/postern.desktop, and the autostart entry start), posternd and its
# systemd unit (packaging/; tauri.conf.json bundle.linux.deb takes postern and posternd from
# target/package/, whatever CARGO_TARGET_DIR is).
package: $(UI_DEPS)
	@bash scripts/install-test-deps.sh --desktop
	$(CARGO) build --release -p postern-engine --bin posternd -p postern
	install -D -m 0755 $(CARGO_TARGET_DIR)/release/posternd target/package/posternd
	install -D -m 0755 $(CARGO_TARGET_DIR)/release/postern target/package/postern
	cd src-tauri && ../ui/node_modules/.bin/tauri build --bundles deb --runner "$(CARGO)"
	@ls -1 $(CARGO_TARGET_DIR)/release/bundle/deb/*.deb

test-deps:
	@bash scripts/install-test-deps.sh

# Keyring tests need a Secret Service: a private session bus with an unlocked gnome-keyring.
# POSTERND_BIN: the tests use the binary just built instead of building it again themselves.
# The window app is built with the UI inside (custom-protocol) for the native test; the cargo
# test line uses the same features, so the postern-window binary it rebuilds keeps the UI.
APP_FEATURES := --features postern-window/custom-protocol
test: test-deps $(UI_DEPS)
	cd ui && npx vitest run && npm run e2e && npm run build
	$(CARGO) build --workspace --bins $(APP_FEATURES)
	POSTERND_BIN="$(abspath $(CARGO_TARGET_DIR))/debug/posternd" \
	  dbus-run-session -- sh -c 'printf test | gnome-keyring-daemon --unlock --components=secrets >/dev/null; exec $(CARGO) test --workspace $(APP_FEATURES)'
	# The tray over D-Bus: read the menu, click "Fetch mail now", see the ETRN arrive.
	dbus-run-session -- xvfb-run -a /usr/bin/python3 src-tauri/tests/tray_dbus.py $(CARGO_TARGET_DIR)/debug/postern
	# The real app in real windows: the wizard against a private Postfix, then the tray.
	dbus-run-session -- xvfb-run -a -s "-screen 0 1280x900x24" /usr/bin/python3 src-tauri/tests/native_e2e.py \
	  $(CARGO_TARGET_DIR)/debug/postern $(CARGO_TARGET_DIR)/debug/postfix-queue
	# About 10 s of each fuzz target from its committed corpus (the corpus stays as it is).
	bash scripts/fuzz.sh smoke

lint:
	$(CARGO) fmt --all -- --check
	python3 scripts/import-graph.py
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Benchmarks (issue 6): never part of `make test`. Root: a private Postfix and smtp-sink. The
# desktop app (rows 6, 7b) is built as `make build` builds it and measured under Xvfb.
bench: test-deps $(UI_DEPS)
	cd ui && npm run build
	$(CARGO) build --release -p postern-engine --bin posternd -p postern-tests --bin postern-bench
	$(CARGO) build --release -p postern
	$(CARGO) build --release -p postern-window --features custom-protocol
	@link_test=$$($(CARGO) test --release -p postern-tests --test link_watch --no-run 2>&1 \
	  | sed -n 's/.*Executable .*(\(.*\))$$/\1/p' | tail -1); \
	POSTERND_BIN="$(abspath $(CARGO_TARGET_DIR))/release/posternd" \
	  $(CARGO_TARGET_DIR)/release/postern-bench --out BENCHMARKS.md \
	  --app "$(abspath $(CARGO_TARGET_DIR))/release/postern" $${link_test:+--link-test "$$link_test"}

# Fuzzing (docs/reliability.md): grows fuzz/corpus/; minimise with `scripts/fuzz.sh cmin`.
fuzz:
	FUZZ_SECONDS="$(FUZZ_SECONDS)" FUZZ_RUNS="$(FUZZ_RUNS)" bash scripts/fuzz.sh run $(FUZZ_TARGETS)
