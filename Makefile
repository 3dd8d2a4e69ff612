# Postern — `make run` and `make test` are all a user needs; `make` alone lists the targets.

CARGO ?= cargo
CARGO_TARGET_DIR ?= target
# Same lookup as posternd: $POSTERN_CONFIG, else the per-user config directory.
CONFIG := $(or $(POSTERN_CONFIG),$(or $(XDG_CONFIG_HOME),$(HOME)/.config)/org.postern.Postern/postern.toml)

.DEFAULT_GOAL := help
.PHONY: help build run test test-deps lint bench

help:
	@echo "Postern — make targets:"
	@echo "  make run     build and run posternd in the foreground with your config"
	@echo "               (\$$POSTERN_CONFIG or $(CONFIG))"
	@echo "  make test    install test dependencies (Postfix, dnsmasq, ...; needs root or sudo),"
	@echo "               build, and run every test against real peers"
	@echo "  make build   release build"
	@echo "  make lint    rustfmt check and clippy with warnings as errors"
	@echo "  make bench   measure Postern beside Postfix and smtp-sink (root, ~5 min); writes BENCHMARKS.md"

build:
	$(CARGO) build --release

run:
	@bash scripts/install-test-deps.sh --runtime
	@if [ ! -f "$(CONFIG)" ]; then \
	  echo "No config at $(CONFIG)." >&2; \
	  echo "Create one from the example and edit it (your domains, your ISP's queue server):" >&2; \
	  echo "  mkdir -p \"$(dir $(CONFIG))\" && cp examples/postern.toml \"$(CONFIG)\"" >&2; \
	  echo "or point POSTERN_CONFIG at an existing file." >&2; \
	  exit 1; \
	fi
	@$(MAKE) --no-print-directory build
	$(CARGO_TARGET_DIR)/release/posternd run --config "$(CONFIG)"

test-deps:
	@bash scripts/install-test-deps.sh

# Keyring tests need a Secret Service: a private session bus with an unlocked gnome-keyring.
# POSTERND_BIN: the tests use the binary just built instead of building it again themselves.
test: test-deps
	$(CARGO) build --workspace --bins
	POSTERND_BIN="$(abspath $(CARGO_TARGET_DIR))/debug/posternd" \
	  dbus-run-session -- sh -c 'printf test | gnome-keyring-daemon --unlock --components=secrets >/dev/null; exec $(CARGO) test --workspace'

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Benchmarks (issue 6): never part of `make test`. Root: a private Postfix and smtp-sink.
bench: test-deps
	$(CARGO) build --release -p postern-engine --bin posternd -p postern-tests --bin postern-bench
	@link_test=$$($(CARGO) test --release -p postern-tests --test link_watch --no-run 2>&1 \
	  | sed -n 's/.*Executable .*(\(.*\))$$/\1/p' | tail -1); \
	POSTERND_BIN="$(abspath $(CARGO_TARGET_DIR))/release/posternd" \
	  $(CARGO_TARGET_DIR)/release/postern-bench --out BENCHMARKS.md $${link_test:+--link-test "$$link_test"}
