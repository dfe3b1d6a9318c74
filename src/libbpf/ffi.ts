// Every C signature the project calls, declared once: libbpf.so.1, the libc
// calls of the binding and of src/sys/, and libsystemd (loaded on first
// use). Nothing outside src/libbpf/ and src/sys/ imports koffi or this file.
import koffi from 'koffi';

const libbpf = koffi.load('libbpf.so.1');
const libc = koffi.load('libc.so.6');

koffi.opaque('bpf_object');
koffi.opaque('bpf_program');
koffi.opaque('bpf_map');
koffi.opaque('btf');

// libbpf_print_fn_t; the va_list arrives as a pointer and goes to vsnprintf.
export const PrintFn = koffi.proto('int xdplb_print_fn(int level, const char *fmt, void *args)');

// ---- sampler: types of the ring buffer calls at the end of `c` ----
koffi.opaque('ring_buffer');
// ring_buffer_sample_fn; `data` points into the ring, valid during the call.
export const RingSampleFn = koffi.proto('int xdplb_ring_sample_fn(void *ctx, void *data, size_t size)');

type KoffiFunction = ReturnType<typeof libbpf.func>;

/** An object whose properties are made by their functions on first read. */
function lazyFunctions<T extends Record<string, () => KoffiFunction>>(make: T): { readonly [K in keyof T]: KoffiFunction } {
  const out = {} as Record<string, KoffiFunction>;
  for (const [name, f] of Object.entries(make)) {
    Object.defineProperty(out, name, {
      enumerable: true,
      configurable: true,
      get: () => {
        const fn = f();
        Object.defineProperty(out, name, { value: fn, enumerable: true });
        return fn;
      },
    });
  }
  return out as { readonly [K in keyof T]: KoffiFunction };
}

// Declared on first use: koffi parses each prototype and looks its symbol up
// (~0.1 ms each), and a command calls a handful of the ~70.
export const c = lazyFunctions({
  libbpf_set_print: () => libbpf.func('void *libbpf_set_print(xdplb_print_fn *fn)'),
  libbpf_strerror: () => libbpf.func('int libbpf_strerror(int err, void *buf, size_t size)'),
  libbpf_num_possible_cpus: () => libbpf.func('int libbpf_num_possible_cpus(void)'),

  bpf_object__open_file: () => libbpf.func('bpf_object *bpf_object__open_file(const char *path, void *opts)'),
  bpf_object__load: () => libbpf.func('int bpf_object__load(bpf_object *obj)'),
  bpf_object__close: () => libbpf.func('void bpf_object__close(bpf_object *obj)'),
  bpf_object__find_program_by_name: () => libbpf.func(
    'bpf_program *bpf_object__find_program_by_name(bpf_object *obj, const char *name)'),
  bpf_object__next_program: () => libbpf.func('bpf_program *bpf_object__next_program(bpf_object *obj, bpf_program *prev)'),
  bpf_object__find_map_by_name: () => libbpf.func('bpf_map *bpf_object__find_map_by_name(bpf_object *obj, const char *name)'),

  bpf_program__name: () => libbpf.func('const char *bpf_program__name(bpf_program *prog)'),
  bpf_program__fd: () => libbpf.func('int bpf_program__fd(bpf_program *prog)'),
  bpf_program__type: () => libbpf.func('int bpf_program__type(bpf_program *prog)'),
  bpf_program__set_autoload: () => libbpf.func('int bpf_program__set_autoload(bpf_program *prog, bool autoload)'),

  bpf_map__fd: () => libbpf.func('int bpf_map__fd(bpf_map *map)'),
  bpf_map__value_size: () => libbpf.func('uint32_t bpf_map__value_size(bpf_map *map)'),
  bpf_map__reuse_fd: () => libbpf.func('int bpf_map__reuse_fd(bpf_map *map, int fd)'),
  bpf_map__set_initial_value: () => libbpf.func('int bpf_map__set_initial_value(bpf_map *map, const void *data, size_t size)'),
  bpf_map__initial_value: () => libbpf.func('void *bpf_map__initial_value(bpf_map *map, _Out_ size_t *psize)'),

  bpf_obj_pin: () => libbpf.func('int bpf_obj_pin(int fd, const char *path)'),
  bpf_obj_get: () => libbpf.func('int bpf_obj_get(const char *path)'),
  bpf_obj_get_info_by_fd: () => libbpf.func('int bpf_obj_get_info_by_fd(int fd, void *info, void *info_len)'),

  bpf_map_lookup_elem: () => libbpf.func('int bpf_map_lookup_elem(int fd, const void *key, void *value)'),
  bpf_map_update_elem: () => libbpf.func('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
  bpf_map_delete_elem: () => libbpf.func('int bpf_map_delete_elem(int fd, const void *key)'),

  bpf_prog_get_fd_by_id: () => libbpf.func('int bpf_prog_get_fd_by_id(uint32_t id)'),
  bpf_link_get_fd_by_id: () => libbpf.func('int bpf_link_get_fd_by_id(uint32_t id)'),
  bpf_link_get_next_id: () => libbpf.func('int bpf_link_get_next_id(uint32_t start_id, void *next_id)'),

  bpf_link_create: () => libbpf.func('int bpf_link_create(int prog_fd, int target_fd, int attach_type, const void *opts)'),
  bpf_link_detach: () => libbpf.func('int bpf_link_detach(int link_fd)'),

  bpf_xdp_attach: () => libbpf.func('int bpf_xdp_attach(int ifindex, int prog_fd, uint32_t flags, const void *opts)'),
  bpf_xdp_detach: () => libbpf.func('int bpf_xdp_detach(int ifindex, uint32_t flags, const void *opts)'),
  bpf_xdp_query: () => libbpf.func('int bpf_xdp_query(int ifindex, int flags, void *opts)'),

  bpf_prog_test_run_opts: () => libbpf.func('int bpf_prog_test_run_opts(int prog_fd, void *opts)'),

  btf__load_from_kernel_by_id: () => libbpf.func('btf *btf__load_from_kernel_by_id(uint32_t id)'),
  btf__free: () => libbpf.func('void btf__free(btf *btf)'),
  btf__type_by_id: () => libbpf.func('const void *btf__type_by_id(btf *btf, uint32_t id)'),
  btf__name_by_offset: () => libbpf.func('const char *btf__name_by_offset(btf *btf, uint32_t offset)'),

  close: () => libc.func('int close(int fd)'),
  dup: () => libc.func('int dup(int fd)'),
  clock_gettime: () => libc.func('int clock_gettime(int clock, void *ts)'),
  vsnprintf: () => libc.func('int vsnprintf(void *buf, size_t size, const char *fmt, void *args)'),
  if_nametoindex: () => libc.func('unsigned int if_nametoindex(const char *ifname)'),
  if_indextoname: () => libc.func('const char *if_indextoname(unsigned int ifindex, void *buf)'),
  socket: () => libc.func('int socket(int domain, int type, int protocol)'),
  // SO_NETNS_COOKIE: a network namespace's identity, never reused while the system runs.
  getsockopt: () => libc.func('int getsockopt(int fd, int level, int name, _Out_ void *value, _Inout_ uint32_t *len)'),
  ioctl: () => libc.func('int ioctl(int fd, unsigned long request, ...)'),
  mount: () => libc.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)'),
  // Serializes the processes that change one interface's slots (root/array.ts).
  flock: () => libc.func('int flock(int fd, int operation)'),

  // ---- filter ----
  // Walking a map's keys (the drop lists are LPM tries read back by status).
  bpf_map_get_next_key: () => libbpf.func('int bpf_map_get_next_key(int fd, const void *key, void *next_key)'),

  // ---- sampler ----
  ring_buffer__new: () => libbpf.func(
    'ring_buffer *ring_buffer__new(int map_fd, xdplb_ring_sample_fn *sample_cb, void *ctx, const void *opts)'),
  ring_buffer__consume: () => libbpf.func('int ring_buffer__consume(ring_buffer *rb)'),
  ring_buffer__epoll_fd: () => libbpf.func('int ring_buffer__epoll_fd(ring_buffer *rb)'),
  ring_buffer__free: () => libbpf.func('void ring_buffer__free(ring_buffer *rb)'),
  // Copies a record out of the ring: several times faster than koffi.view.
  memcpy: () => libc.func('void *memcpy(void *dest, const void *src, size_t n)'),

  // ---- lb ----
  // Maglev tables are inner maps made from userspace and filled through a
  // memory mapping; the backend table is read and written in batches; tests
  // run programs inside a network namespace of their own.
  bpf_map_create: () => libbpf.func(
    'int bpf_map_create(int map_type, const char *map_name, uint32_t key_size, uint32_t value_size, uint32_t max_entries, const void *opts)'),
  bpf_map_update_batch: () => libbpf.func(
    'int bpf_map_update_batch(int fd, const void *keys, const void *values, void *count, const void *opts)'),
  bpf_map_lookup_batch: () => libbpf.func(
    'int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, void *count, const void *opts)'),
  bpf_map_get_fd_by_id: () => libbpf.func('int bpf_map_get_fd_by_id(uint32_t id)'),
  setns: () => libc.func('int setns(int fd, int nstype)'),
  mmap: () => libc.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)'),
  munmap: () => libc.func('int munmap(void *addr, size_t length)'),
});

// libsystemd: sd_notify(3) (READY/STATUS/WATCHDOG must come from the
// daemon's own pid) and sd-bus, to ask systemd whether a stop is the first
// half of a restart.
function loadSystemd() {
  const lib = koffi.load('libsystemd.so.0');
  koffi.opaque('sd_bus');
  koffi.opaque('sd_bus_message');
  return {
    sd_notify: lib.func('int sd_notify(int unset_environment, const char *state)'),
    sd_pid_get_unit: lib.func('int sd_pid_get_unit(int pid, _Out_ char **unit)'),
    sd_bus_new: lib.func('int sd_bus_new(_Out_ sd_bus **ret)'),
    sd_bus_set_address: lib.func('int sd_bus_set_address(sd_bus *bus, const char *address)'),
    sd_bus_start: lib.func('int sd_bus_start(sd_bus *bus)'),
    sd_bus_flush_close_unref: lib.func('sd_bus *sd_bus_flush_close_unref(sd_bus *bus)'),
    sd_bus_path_encode: lib.func('int sd_bus_path_encode(const char *prefix, const char *external_id, _Out_ char **ret_path)'),
    sd_bus_get_property: lib.func(
      'int sd_bus_get_property(sd_bus *bus, const char *destination, const char *path, const char *interface, const char *member, void *ret_error, _Out_ sd_bus_message **reply, const char *type)'),
    sd_bus_get_property_string: lib.func(
      'int sd_bus_get_property_string(sd_bus *bus, const char *destination, const char *path, const char *interface, const char *member, void *ret_error, _Out_ char **ret)'),
    sd_bus_message_read: lib.func('int sd_bus_message_read(sd_bus_message *m, const char *types, ...)'),
    sd_bus_message_unref: lib.func('sd_bus_message *sd_bus_message_unref(sd_bus_message *m)'),
    sd_bus_error_free: lib.func('void sd_bus_error_free(void *e)'),
  };
}
let systemd: ReturnType<typeof loadSystemd> | null = null;
export function libsystemd() {
  systemd ??= loadSystemd();
  return systemd;
}
export const decodeString = (ptr: unknown): string | null => (ptr ? koffi.decode(ptr, 'char', -1) : null);
/** The pointer stored in C memory at `mem`. */
export const readPointer = (mem: unknown): unknown => koffi.decode(mem, 'void *');

export const errno = (): number => koffi.errno();
export const register = (fn: (...args: any[]) => number) => koffi.register(fn, koffi.pointer(PrintFn));
export const alloc = (bytes: number) => koffi.alloc('uint8_t', bytes);
export const free = (ptr: unknown) => koffi.free(ptr);
export const address = (ptr: unknown): bigint => koffi.address(ptr);
// A Buffer over C memory, not a copy: copy out before the memory is freed.
export const view = (ptr: unknown, bytes: number): Buffer => Buffer.from(koffi.view(ptr, bytes));
export const readU32 = (ptr: unknown): number => koffi.decode(ptr, 'uint32_t');

// ---- sampler ----
export const registerRingSample = (fn: (ctx: unknown, data: unknown, size: number | bigint) => number) =>
  koffi.register(fn, koffi.pointer(RingSampleFn));
export const unregister = (callback: bigint) => koffi.unregister(callback);
