# postern -- see README.md.  GNU make.

CC		?= cc
BUILD		?= obj
PKGS		 = libtls libevent libmemcached libseccomp libcrypto
PKG_CFLAGS	:= $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS	:= $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_CFLAGS	:= $(shell pkg-config --cflags cmocka 2>/dev/null)
CMOCKA_LIBS	:= $(shell pkg-config --libs cmocka 2>/dev/null)

OPT		?= -O2
WARN		 = -Wall -Wextra -Werror -Wshadow -Wpointer-arith \
		   -Wmissing-prototypes -Wstrict-prototypes -Wno-unused-label
INCS		 = -Icommon -Iparent -Iauthproc -Irelay -Itlsproc -Ipolicy \
		   -I$(BUILD)
CFLAGS		+= $(OPT) -g $(WARN) -D_GNU_SOURCE -std=gnu11 \
		   -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIE \
		   $(INCS) $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDFLAGS		+= -pie -Wl,-z,relro,-z,now -Wl,--as-needed $(EXTRA_LDFLAGS)
LIBS		 = $(PKG_LIBS) -lresolv -lpthread

COMMON_SRCS	 = common/log.c common/imsg.c common/proto.c common/sandbox.c \
		   common/proc.c common/proxyproto.c \
		   common/blob.c common/tlsbridge.c common/json.c \
		   common/http.c common/http_chunked.c
AUTHPROC_SRCS	 = authproc/authproc.c authproc/imap.c authproc/pop3.c \
		   authproc/http.c \
		   authproc/imap_parser.c authproc/pop3_parser.c authproc/sasl.c \
		   authproc/http_parser.c authproc/http_route.c \
		   authproc/http_form.c
RELAY_SRCS	 = relay/relay.c relay/relay_imap.c relay/relay_pop3.c \
		   relay/route.c relay/splice.c relay/mcache.c relay/mckey.c \
		   relay/counters.c relay/lookup.c relay/authhttp.c \
		   relay/http_response.c relay/relay_http.c relay/relay_ctl.c
TLSPROC_SRCS	 = tlsproc/tlsproc.c tlsproc/sni.c
POLICY_SRCS	 = policy/policy.c policy/window.c policy/cidr.c
PARENT_SRCS	 = parent/parent.c parent/audit.c parent/control.c \
		   parent/metrics.c parent/scrape.c
SRCS		 = $(COMMON_SRCS) $(AUTHPROC_SRCS) $(RELAY_SRCS) \
		   $(TLSPROC_SRCS) $(POLICY_SRCS) $(PARENT_SRCS)
OBJS		 = $(SRCS:%.c=$(BUILD)/%.o) $(BUILD)/parent/parse.o
DEPS		 = $(OBJS:.o=.d)

PROG		 = $(BUILD)/postern
CTL_PROG	 = $(BUILD)/posternctl
CTL_OBJS	 = $(BUILD)/ctl/posternctl.o $(BUILD)/common/imsg.o \
		   $(BUILD)/common/log.o $(BUILD)/common/proto.o \
		   $(BUILD)/common/http.o $(BUILD)/policy/cidr.o
# Debian's python3: the web regress cases use its caldav and websockets
PYTHON		:= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || \
		   echo python3)

.PHONY: all clean test unit regress deps sanitize test-sanitize fuzz \
	fuzz-smoke demo install format tests bench bench-tools

all: $(PROG) postern $(CTL_PROG) posternctl

postern: $(PROG)
	ln -sf $(PROG) postern

posternctl: $(CTL_PROG)
	ln -sf $(CTL_PROG) posternctl

$(CTL_PROG): $(CTL_OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(CTL_OBJS) $(LIBS)

$(PROG): $(OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(OBJS) $(LIBS)

$(BUILD)/parent/parse.c: parent/parse.y
	@mkdir -p $(dir $@)
	bison -o $@ $<

$(BUILD)/parent/parse.o: $(BUILD)/parent/parse.c
	$(CC) $(CFLAGS) -Wno-missing-prototypes -MMD -c -o $@ $<

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -c -o $@ $<

-include $(DEPS)

# ---- unit tests (cmocka), one file per module ----
UNIT_TESTS	 = imsg imap_parser pop3_parser sasl config log route sni json mckey \
		   authhttp http_request http_route http_chunked http_response \
		   http_form control \
		   policy proxyproto tlsbridge
UNIT_BINS	 = $(UNIT_TESTS:%=$(BUILD)/tests/test_%)
LIB_OBJS	 = $(filter-out $(BUILD)/parent/parent.o,$(OBJS))

$(BUILD)/tests/test_%: tests/test_%.c $(LIB_OBJS) $(BUILD)/tests/stubs.o
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CMOCKA_CFLAGS) -Wno-missing-prototypes $(LDFLAGS) \
	    -o $@ $< $(LIB_OBJS) $(BUILD)/tests/stubs.o $(LIBS) $(CMOCKA_LIBS)

$(BUILD)/tests/stubs.o: tests/stubs.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wno-missing-prototypes -c -o $@ $<

tests: $(UNIT_BINS)

unit: $(UNIT_BINS)
	@rc=0; for t in $(UNIT_BINS); do $$t || rc=1; done; exit $$rc

# the test-hook build adds a forbidden system call on SIGUSR2 (regress)
$(BUILD)/postern-testhooks: $(SRCS) parent/parse.y
	$(MAKE) BUILD=$(BUILD)/testhooks EXTRA_CFLAGS="$(EXTRA_CFLAGS) \
	    -DPOSTERN_TEST_HOOKS" $(BUILD)/testhooks/postern
	cp $(BUILD)/testhooks/postern $@

regress: $(PROG) $(CTL_PROG) $(BUILD)/postern-testhooks bench-tools
	$(PYTHON) regress/run.py --postern $(PROG) \
	    --postern-testhooks $(BUILD)/postern-testhooks $(REGRESS_ARGS)

deps:
	@sh .ci/install-deps.sh

test: deps
	$(MAKE) unit
	$(MAKE) regress
	$(MAKE) CC=clang BUILD=obj-clang all bench-tools

# ---- sanitizers ----
SAN_FLAGS	 = -fsanitize=address,undefined -fno-omit-frame-pointer \
		   -fno-sanitize-recover=undefined -DPOSTERN_SANITIZE

sanitize:
	$(MAKE) BUILD=obj-sanitize OPT=-O1 EXTRA_CFLAGS="$(SAN_FLAGS)" \
	    EXTRA_LDFLAGS="$(SAN_FLAGS)" all tests

test-sanitize: deps
	$(MAKE) BUILD=obj-sanitize OPT=-O1 EXTRA_CFLAGS="$(SAN_FLAGS)" \
	    EXTRA_LDFLAGS="$(SAN_FLAGS)" unit regress

# ---- fuzzing (clang libFuzzer) ----
FUZZ_TARGETS	 = imap_parser pop3_parser sasl imsg proxyproto authhttp \
		   http_request http_route http_chunked http_response http_form \
		   control
FUZZ_BINS	 = $(FUZZ_TARGETS:%=fuzz/%-fuzz)
FUZZ_CFLAGS	 = -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
		   -Icommon -Iauthproc -Irelay -Ipolicy -Iparent $(PKG_CFLAGS)
FUZZ_SRCS	 = $(COMMON_SRCS) authproc/imap_parser.c \
		   authproc/pop3_parser.c authproc/sasl.c relay/authhttp.c \
		   authproc/http_parser.c authproc/http_route.c \
		   authproc/http_form.c relay/http_response.c parent/scrape.c
FUZZ_SECONDS	?= 20

fuzz/%-fuzz: fuzz/fuzz_%.c $(FUZZ_SRCS)
	clang $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_SRCS) $(PKG_LIBS) -lresolv

fuzz: $(FUZZ_BINS)

fuzz-smoke: $(FUZZ_BINS)
	@for t in $(FUZZ_TARGETS); do \
	    echo "fuzz $$t for $(FUZZ_SECONDS) s"; \
	    mkdir -p $(BUILD)/fuzz-corpus/$$t; \
	    ./fuzz/$$t-fuzz -max_total_time=$(FUZZ_SECONDS) \
	        -print_final_stats=0 -close_fd_mask=3 \
	        $(BUILD)/fuzz-corpus/$$t fuzz/corpus/$$t || exit 1; \
	done

# ---- benchmarks (bench/README.md) ----
BENCH_TOOLS	 = $(BUILD)/bench/loadgen $(BUILD)/bench/fakebackend \
		   $(BUILD)/bench/tls_resume
TLS_LIBS	:= $(shell pkg-config --libs libtls 2>/dev/null)

$(BUILD)/bench/loadgen: bench/loadgen.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(TLS_LIBS)

$(BUILD)/bench/tls_resume: bench/tls_resume.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(TLS_LIBS)

$(BUILD)/bench/fakebackend: bench/fakebackend.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $<

bench-tools: $(BENCH_TOOLS)

# deps first, then a fresh make: pkg-config must run after the install
bench: deps
	$(MAKE) all bench-tools
	python3 bench/run --postern $(PROG) --tools $(BUILD)/bench $(BENCH_ARGS)

# ---- demo and install ----
# deps first, then a fresh make: pkg-config must run after the install
demo: deps
	$(MAKE) all
	python3 regress/demo.py --postern $(PROG)

PREFIX		?= /usr/local
install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/share/man/man8 \
	    $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)/etc/postern
	install -m 0755 $(PROG) $(DESTDIR)$(PREFIX)/sbin/postern
	install -m 0755 $(CTL_PROG) $(DESTDIR)$(PREFIX)/sbin/posternctl
	install -m 0644 parent/postern.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -m 0644 ctl/posternctl.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -m 0644 parent/postern.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	[ -e $(DESTDIR)/etc/postern/postern.conf ] || \
	    install -m 0644 etc/postern.conf $(DESTDIR)/etc/postern/
	getent passwd _postern >/dev/null || useradd --system \
	    --no-create-home --home-dir /var/empty --shell /usr/sbin/nologin \
	    _postern

format:
	clang-format -i $(SRCS) common/*.h authproc/*.h relay/*.h parent/*.h \
	    tlsproc/*.h policy/*.h bench/*.c

clean:
	rm -rf obj obj-* postern fuzz/*-fuzz
