# shadowvm: one flat Makefile.  `make V=1` shows the commands.
#   make           build the VMM, the guests and the test runner
#   make demo      install what is missing, then run the demo guest
#   make check     install what is missing, then run every test suite
#   make bench     benchmarks that print their figures
#   make clean

CC       ?= gcc
CLANG    ?= clang
BUILD    := build
VERSION  := 0.1.0

ifeq ($(V),1)
Q :=
else
Q := @
endif

PKGS       := libelf check json-c cairo
PKG_CFLAGS  = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS    = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
# vmm/ by part: CPU virtualisation, KVM, devices, loaders, CLI, trace
VMM_INC  := -Ivmm -Ivmm/cpu -Ivmm/kvm -Ivmm/dev -Ivmm/load -Ivmm/cli -Ivmm/trace -Ivmm/monitor
CFLAGS   := -std=c11 -D_GNU_SOURCE -O2 -g $(WARN) -Iinclude -Ishadow $(VMM_INC) \
            -DSHADOWVM_VERSION=\"$(VERSION)\"
ASAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

# ---- shadow/: the shadow MMU library (no KVM) ---------------------------
SHADOW_SRCS := shadow/shadow.c shadow/walk.c shadow/spte.c shadow/engine.c shadow/vtlb.c \
               shadow/cache.c shadow/cache_map.c shadow/invariant.c shadow/pool.c shadow/lib.c
# Per-layer include paths: shadow/ sees include/ and itself only, so the
# compiler refuses an #include of a vmm/ header (or a test's) from shadow/.
$(BUILD)/host/shadow/%.o $(BUILD)/asan/shadow/%.o: CFLAGS := $(filter-out -Ishadow $(VMM_INC),$(CFLAGS))
$(BUILD)/host/shadow/%.o $(BUILD)/asan/shadow/%.o: PKG_CFLAGS :=

# shadow/ freestanding, as the monitor is to run it (DESIGN.md §3): no libc
# headers, no red zone, no SSE.  `make freestanding-shadow` links it into one
# relocatable object and fails if that needs anything from its environment
# but memset, memcpy and memmove.
FREESTANDING_CFLAGS := -std=c11 -O2 -g $(WARN) -ffreestanding -nostdlib -nostdinc \
                       -isystem $(shell $(CC) -print-file-name=include) -mno-red-zone \
                       -mno-sse -mno-mmx -mno-80387 -fno-pic -fno-pie -fno-stack-protector \
                       -fno-asynchronous-unwind-tables -mcmodel=kernel -Iinclude

# ---- vmm/ ----------------------------------------------------------------
VMM_LIB_SRCS := vmm/load/elf_load.c vmm/load/multiboot_load.c vmm/load/mptable.c vmm/load/boot.c vmm/dev/devices.c vmm/dev/ide.c vmm/dev/console.c vmm/load/mem.c vmm/cli/size.c vmm/cli/status.c vmm/cli/cli.c vmm/cli/log.c \
                vmm/trace/trace.c vmm/trace/trace_read.c vmm/trace/trace_summary.c vmm/trace/trace_plot.c vmm/trace/trace_plot_draw.c vmm/kvm/backend.c vmm/kvm/kvm.c \
                vmm/cpu/monitor.c vmm/cpu/monitor_apply.S vmm/cpu/monitor_image.S vmm/cpu/segment.c vmm/cpu/gva.c vmm/cpu/reflect.c vmm/cpu/emulate.c vmm/cpu/control.c \
                vmm/trace/counters.c
VMM_SRCS     := vmm/cli/main.c vmm/run.c vmm/kvm/vcpu.c vmm/cpu/trap.c vmm/cpu/trap_setup.c vmm/cpu/fillmon.c \
                vmm/kvm/watchdog.c vmm/trace/stats.c $(VMM_LIB_SRCS)

# ---- tests/ ----------------------------------------------------------------
# the shadow MMU's suites, their fixture, and the fake guest memory they
# share with the walk fuzzer and the shadow bench
SHADOW_TEST_SRCS := tests/check_shadow_walk.c tests/check_shadow_walk_modes.c tests/check_shadow_spte.c tests/check_shadow_vtlb.c \
                    tests/check_shadow_cache.c tests/check_shadow_check.c tests/shadow_fixture.c \
                    tests/fake_mem.c
UNIT_SUITES  := tests/check_elf_load.c tests/check_multiboot.c tests/check_devices.c tests/check_ide.c tests/check_console.c tests/check_cli.c tests/check_abi.c tests/check_backend.c \
                $(SHADOW_TEST_SRCS) tests/check_trace.c tests/check_trace_plot.c tests/check_segment.c tests/check_reflect.c tests/check_emulate.c tests/check_gva.c tests/check_control.c \
                tests/check_counters.c
INTEG_SUITES := tests/check_integration.c
TEST_SRCS    := tests/runner.c tests/util.c tests/fake_vm.c $(UNIT_SUITES) $(INTEG_SUITES) \
                $(VMM_LIB_SRCS) $(SHADOW_SRCS)

# ---- guest/ ------------------------------------------------------------------
GUESTS        := hello exitcode triplefault spin portloop paging usermode faults adversary accessmatrix scenarios torture bench
GUEST_RT_SRCS := guest/rt/entry.S guest/rt/console.c guest/rt/printf.c guest/rt/lib.c \
                 guest/rt/check.c guest/rt/pmem.c guest/rt/paging.c guest/rt/trap.c \
                 guest/rt/trap_entry.S guest/rt/user.c guest/rt/user_entry.S guest/rt/probe.c
GUEST_CFLAGS  := -std=c11 -O2 -g $(WARN) -ffreestanding -fno-builtin -nostdlib -nostdinc \
                 -isystem $(shell $(CC) -print-file-name=include) \
                 -mno-red-zone -mno-sse -mno-mmx -mno-80387 -fno-pic -fno-pie \
                 -fno-stack-protector -fno-asynchronous-unwind-tables \
                 -Iinclude -Iguest/rt
GUEST_LDFLAGS := -nostdlib -static -no-pie -Wl,--build-id=none -Wl,-z,max-page-size=0x1000 \
                 -Wl,-z,noexecstack -T guest/rt/guest.ld

obj = $(patsubst %.c,$(BUILD)/$(1)/%.o,$(patsubst %.S,$(BUILD)/$(1)/%.o,$(2)))

VMM_OBJS   := $(call obj,host,$(VMM_SRCS) $(SHADOW_SRCS))
TEST_OBJS  := $(call obj,host,$(TEST_SRCS))
ASAN_OBJS  := $(call obj,asan,$(TEST_SRCS))
GUEST_RT_OBJS := $(call obj,guest,$(GUEST_RT_SRCS))
GUEST_ELFS := $(patsubst %,$(BUILD)/guest/%.elf,$(GUESTS))
# Multiboot guests (guest/mb/): ELF32, 32-bit code (and some 64-bit code in
# .code64 assembly), with their own small runtime; no libgcc, so no 64-bit
# division in their C
MB_GUESTS     := mbmodes mbprobe mbadversary mbos
MBOS_SRCS     := guest/mb/mbos.c guest/mb/mbos_cpu.c guest/mb/mbos_hw.c guest/mb/mbos_shell.c \
                 guest/mb/mbos_entry.S
MB_RT_SRCS    := guest/mb/head.S guest/mb/mbrt.c
MB_CFLAGS     := $(filter-out -mno-red-zone,$(GUEST_CFLAGS)) -m32 -march=i686 -Iguest/mb
MB_RT_OBJS    := $(call obj,guest32,$(MB_RT_SRCS))
GUEST_ELFS    += $(patsubst %,$(BUILD)/guest/%.elf,$(MB_GUESTS))

.SECONDARY:
.PHONY: all demo check check-unit check-asan check-integration bench deps clean
all: $(BUILD)/shadowvm $(BUILD)/tests/runner $(GUEST_ELFS)

$(BUILD)/shadowvm: $(VMM_OBJS)
	@echo "  LD      $@"
	$(Q)$(CC) -o $@ $^ $(PKG_LIBS) -lZydis

$(BUILD)/tests/runner: $(TEST_OBJS)
	@echo "  LD      $@"
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) -o $@ $^ $(PKG_LIBS) -lZydis

$(BUILD)/tests/runner-asan: $(ASAN_OBJS)
	@echo "  LD      $@"
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CLANG) $(ASAN) -o $@ $^ $(PKG_LIBS) -lZydis

$(BUILD)/host/%.o: %.c
	@echo "  CC      $<"
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/host/%.o: %.S
	@echo "  AS      $<"
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) -Ivmm/cpu -DMONITOR_BIN='"$(BUILD)/monitor/monitor.bin"' -c -o $@ $<

$(BUILD)/asan/%.o: %.S
	@echo "  AS-ASAN $<"
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CLANG) -Ivmm/cpu -DMONITOR_BIN='"$(BUILD)/monitor/monitor.bin"' -c -o $@ $<

$(BUILD)/asan/%.o: %.c
	@echo "  CC-ASAN $<"
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CLANG) $(CFLAGS) $(ASAN) $(PKG_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/guest/%.o: %.c
	@echo "  CC-G    $<"
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(GUEST_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/guest/%.o: %.S
	@echo "  AS-G    $<"
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(GUEST_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/guest/%.elf: $(BUILD)/guest/guest/%.o $(GUEST_RT_OBJS) guest/rt/guest.ld
	@echo "  LD-G    $@"
	$(Q)$(CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) -o $@ $< $(GUEST_RT_OBJS)

$(BUILD)/guest32/%.o: %.c
	@echo "  CC-G32  $<"
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(MB_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/guest32/%.o: %.S
	@echo "  AS-G32  $<"
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(MB_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/guest/mbprobe.elf $(BUILD)/guest/mbadversary.elf: $(BUILD)/guest/%.elf: $(BUILD)/guest32/guest/mb/%.o $(MB_RT_OBJS) guest/mb/mb.ld
	@echo "  LD-G32  $@"
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) -m32 -nostdlib -static -no-pie -Wl,--build-id=none -Wl,-z,max-page-size=0x1000 \
		-Wl,-z,noexecstack -T guest/mb/mb.ld -o $@ $(filter %.o,$^)

$(BUILD)/guest/mbmodes.elf: $(BUILD)/guest32/guest/mb/mbmodes.o $(BUILD)/guest32/guest/mb/long.o $(MB_RT_OBJS) guest/mb/mb.ld
	@echo "  LD-G32  $@"
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) -m32 -nostdlib -static -no-pie -Wl,--build-id=none -Wl,-z,max-page-size=0x1000 \
		-Wl,-z,noexecstack -T guest/mb/mb.ld -o $@ $(filter %.o,$^)

$(BUILD)/guest/mbos.elf: $(call obj,guest32,$(MBOS_SRCS)) $(MB_RT_OBJS) guest/mb/mb.ld
	@echo "  LD-G32  $@"
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) -m32 -nostdlib -static -no-pie -Wl,--build-id=none -Wl,-z,max-page-size=0x1000 \
		-Wl,-z,noexecstack -T guest/mb/mb.ld -o $@ $(filter %.o,$^)

# ---- set-up, tests, demo ------------------------------------------------------
deps:
	$(Q)scripts/deps

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/with-kvm scripts/demo

check: deps
	$(Q)$(MAKE) --no-print-directory all $(BUILD)/tests/runner-asan
	$(Q)$(MAKE) --no-print-directory check-unit check-asan check-integration

check-unit: $(BUILD)/tests/runner
	$(Q)$(BUILD)/tests/runner unit

check-asan: $(BUILD)/tests/runner-asan
	$(Q)ASAN_OPTIONS=detect_leaks=0 $(BUILD)/tests/runner-asan unit

check-integration: $(BUILD)/tests/runner $(BUILD)/shadowvm $(GUEST_ELFS)
	$(Q)scripts/check-integration

# ---- benchmarks ----------------------------------------------------------------
bench: all bench-workloads bench-workloads-npt0 bench-shadow bench-exit bench-os bench-trace bench-plot

# The bench guest's workloads under --paging=hw and every --shadow-opts, in one
# scripts/with-kvm session; the table on stdout, the figures in build/bench.json.
.PHONY: bench-workloads
$(BUILD)/bench_report: $(call obj,host,tests/bench_report.c tests/util.c)
	@echo "  LD      $@"
	$(Q)$(CC) -o $@ $^ $(PKG_LIBS)

bench-workloads: $(BUILD)/shadowvm $(BUILD)/guest/bench.elf $(BUILD)/bench_report
	$(Q)scripts/bench-workloads $(BUILD)/bench $(BUILD)/bench.json

# The same table on KVM without NPT (the nested runner's kvm-amd npt=0): hw
# mode on KVM's own shadow MMU, shadow mode on top of it.
.PHONY: bench-workloads-npt0
bench-workloads-npt0: $(BUILD)/shadowvm $(BUILD)/guest/bench.elf $(BUILD)/bench_report
	$(Q)WITH_KVM_NPT=0 scripts/bench-workloads $(BUILD)/bench-npt0 $(BUILD)/bench-npt0.json

# The trace's overhead: exits and the same-boot wall-time ratio of the paging
# guest with and without --trace.
.PHONY: bench-trace
bench-trace: $(BUILD)/shadowvm $(BUILD)/guest/paging.elf
	$(Q)scripts/with-kvm scripts/bench-trace

# trace plot on a made-up trace of 10^6 records (no KVM): its wall time.
.PHONY: bench-plot
bench-plot: $(BUILD)/shadowvm
	$(Q)scripts/bench-plot

# The small OS guest (interrupts, CR3 and TSS switches, IDE) in both paging
# modes side by side: exits, hidden faults, interrupts, halts, CR3 writes
# and wall time as a ratio to hw.
.PHONY: bench-os
bench-os: $(BUILD)/shadowvm $(BUILD)/guest/mbos.elf
	$(Q)scripts/with-kvm scripts/bench-os

# The cost of one exit, portloop guest, both paging modes side by side.
.PHONY: bench-exit
bench-exit: $(BUILD)/shadowvm $(BUILD)/guest/portloop.elf
	$(Q)scripts/with-kvm scripts/bench-exit

# The shadow MMU alone on synthetic tables (tests/bench_shadow.c): exits per
# page and instructions per hidden fault, counted by callgrind inside the
# shadow calls of the measured phase only, for the virtual TLB (none) and
# every optimization (all).
.PHONY: bench-shadow
BENCH_SHADOW_OBJS := $(call obj,host,tests/bench_shadow.c tests/fake_mem.c $(SHADOW_SRCS))

$(BUILD)/bench_shadow: $(BENCH_SHADOW_OBJS)
	@echo "  LD      $@"
	$(Q)$(CC) -o $@ $^

bench-shadow: $(BUILD)/bench_shadow
	$(Q)printf '%-8s %-5s %10s %8s %12s %10s\n' workload opts exits/page leaves instr/fault instr/leaf
	$(Q)for w in first first_a retouch; do for o in none all; do \
	  valgrind --tool=callgrind --collect-atstart=no \
	    --callgrind-out-file=$(BUILD)/bench_shadow.$$w.$$o.callgrind $(BUILD)/bench_shadow $$o $$w \
	    >$(BUILD)/bench_shadow.out 2>$(BUILD)/bench_shadow.valgrind || exit 1; \
	  set -- $$(cat $(BUILD)/bench_shadow.out); \
	  ir=$$(awk '/^totals:/{print $$2}' $(BUILD)/bench_shadow.$$w.$$o.callgrind); \
	  awk -v w=$$w -v o=$$o -v p=$$2 -v f=$$4 -v l=$$8 -v ir=$${ir:-0} 'BEGIN { \
	    printf "%-8s %-5s %10.4f %8d %12s %10s\n", w, o, f / p, l, \
	      f ? sprintf("%d", ir / f) : "-", l ? sprintf("%d", ir / l) : "-" }'; \
	done; done

# The fill monitor (vmm/monitor/, DESIGN.md §3): shadow/ freestanding and
# the monitor's own code, linked where the monitor root maps it and
# flattened into the bytes vmm/cpu/monitor_image.S embeds in shadowvm.
MONITOR_SRCS := vmm/monitor/fill.c vmm/monitor/lib.c
$(BUILD)/freestanding/vmm/monitor/%.o: FREESTANDING_CFLAGS += -Ishadow -Ivmm/cpu -Ivmm/monitor
$(BUILD)/monitor/monitor.elf: $(call obj,freestanding,$(MONITOR_SRCS) $(SHADOW_SRCS)) vmm/monitor/image.ld
	@echo "  LD-MON  $@"
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) -nostdlib -static -no-pie -Wl,--build-id=none -Wl,-z,noexecstack \
	  -Wl,-T,vmm/monitor/image.ld -o $@ $(filter %.o,$^)
$(BUILD)/monitor/monitor.bin: $(BUILD)/monitor/monitor.elf
	$(Q)objcopy -O binary $< $@
$(BUILD)/host/vmm/cpu/monitor_image.o $(BUILD)/asan/vmm/cpu/monitor_image.o: $(BUILD)/monitor/monitor.bin

.PHONY: freestanding-shadow
$(BUILD)/freestanding/%.o: %.c
	@echo "  CC-FS   $<"
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(FREESTANDING_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/freestanding/libshadow.o: $(call obj,freestanding,$(SHADOW_SRCS))
	@echo "  LD -r   $@"
	$(Q)$(LD) -r -o $@ $^

freestanding-shadow: $(BUILD)/freestanding/libshadow.o
	$(Q)undef=$$(nm -u $< | awk '{print $$2}' | grep -vxE 'memset|memcpy|memmove'); \
	  if [ -n "$$undef" ]; then echo "freestanding-shadow: $< needs:" $$undef; exit 1; fi; \
	  echo "freestanding-shadow: $< needs only:" $$(nm -u $< | awk '{print $$2}')

# valgrind memcheck over the integration guests, both paging modes.
.PHONY: memcheck
memcheck: all
	$(Q)scripts/with-kvm scripts/memcheck

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# ---- fuzzing (libFuzzer, clang, ASan+UBSan) ---------------------------------------
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Werror -Iinclude -Ishadow $(VMM_INC) \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
.PHONY: fuzz fuzz-build
fuzz-build: $(BUILD)/fuzz/fuzz_elf $(BUILD)/fuzz/fuzz_walk

$(BUILD)/fuzz/fuzz_elf: tests/fuzz_elf.c vmm/load/elf_load.c vmm/load/multiboot_load.c vmm/load/mem.c
	@echo "  FUZZ-LD $@"
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -o $@ $^ $(shell pkg-config --libs libelf)

$(BUILD)/fuzz/fuzz_walk: tests/fuzz_walk.c tests/fake_mem.c $(SHADOW_SRCS)
	@echo "  FUZZ-LD $@"
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -o $@ $^

# Each harness runs FUZZ_SECONDS on its seeds (tests/corpus/*) plus what it
# found before (build/fuzz/corpus-*); it prints its executions at the end.
fuzz: fuzz-build
	$(Q)for h in elf walk; do mkdir -p $(BUILD)/fuzz/corpus-$$h; \
	  echo "fuzz: $$h for $(FUZZ_SECONDS)s"; \
	  $(BUILD)/fuzz/fuzz_$$h -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=$(BUILD)/fuzz/crash-$$h- $(BUILD)/fuzz/corpus-$$h tests/corpus/$$h \
	    > $(BUILD)/fuzz/$$h.log 2>&1; st=$$?; \
	  grep -E "stat::number_of_executed_units|ERROR|SUMMARY|Done" $(BUILD)/fuzz/$$h.log; \
	  [ $$st -eq 0 ] || { echo "fuzz: $$h found a crash, see $(BUILD)/fuzz/$$h.log"; exit 1; }; done

# ---- torture: seeded random paging in both modes ---------------------------------
SEEDS ?= 20
STEPS ?= 5000
.PHONY: torture
torture: $(BUILD)/shadowvm $(BUILD)/guest/torture.elf
	$(Q)scripts/with-kvm scripts/torture $(SEEDS) $(STEPS)
