// A BPF object file: open, pick programs, set rodata, share maps, load.
import { c } from './ffi.js';
import { BpfError } from './errors.js';
import { installLogger, resetLog, explainLog } from './log.js';
import { errno, view } from './ffi.js';

export const PROG_TYPE_XDP = 6;

type Ptr = unknown;

export class BpfObject {
  readonly path: string;
  private obj: Ptr;
  private loaded = false;

  private constructor(path: string, obj: Ptr) {
    this.path = path;
    this.obj = obj;
  }

  static open(path: string): BpfObject {
    installLogger();
    resetLog();
    const obj = c.bpf_object__open_file(path, null);
    if (!obj) throw new BpfError('bpf_object__open_file', errno(), `cannot open BPF object ${path}`, explainLog());
    return new BpfObject(path, obj);
  }

  programNames(): string[] {
    const names: string[] = [];
    for (let p = c.bpf_object__next_program(this.obj, null); p; p = c.bpf_object__next_program(this.obj, p)) {
      names.push(c.bpf_program__name(p));
    }
    return names;
  }

  private program(name: string): Ptr {
    return c.bpf_object__find_program_by_name(this.obj, name);
  }

  hasProgram(name: string): boolean {
    return !!this.program(name);
  }

  programType(name: string): number {
    return c.bpf_program__type(this.program(name));
  }

  /** Load only this program of the object (the others stay out of the kernel). */
  loadOnly(name: string): void {
    for (let p = c.bpf_object__next_program(this.obj, null); p; p = c.bpf_object__next_program(this.obj, p)) {
      c.bpf_program__set_autoload(p, c.bpf_program__name(p) === name);
    }
  }

  hasMap(name: string): boolean {
    return !!c.bpf_object__find_map_by_name(this.obj, name);
  }

  /** The value size a map of the object declares (before load). */
  mapValueSize(name: string): number {
    const map = c.bpf_object__find_map_by_name(this.obj, name);
    if (!map) throw new Error(`${this.path} has no map ${name}`);
    return c.bpf_map__value_size(map);
  }

  /** A data section's initial value as the object file has it (a copy),
   *  null when the object has no such section. */
  data(section: string): Buffer | null {
    const map = c.bpf_object__find_map_by_name(this.obj, section);
    if (!map) return null;
    const size = [0];
    const ptr = c.bpf_map__initial_value(map, size);
    return ptr ? view(ptr, Number(size[0])) : null;
  }

  /** Set a data section's initial value (e.g. ".rodata.xdplb") before load. */
  setData(section: string, value: Buffer): void {
    const map = c.bpf_object__find_map_by_name(this.obj, section);
    if (!map) throw new Error(`${this.path} has no ${section} section`);
    const r = c.bpf_map__set_initial_value(map, value, value.length);
    if (r < 0) throw new BpfError('bpf_map__set_initial_value', -r, `cannot set ${section} of ${this.path}`);
  }

  /** Make the object's map `name` be the existing map behind `fd`. */
  reuseMap(name: string, fd: number): void {
    const map = c.bpf_object__find_map_by_name(this.obj, name);
    if (!map) throw new Error(`${this.path} has no map ${name}`);
    const r = c.bpf_map__reuse_fd(map, fd);
    if (r < 0) throw new BpfError('bpf_map__reuse_fd', -r, `cannot share map ${name} with ${this.path}`);
  }

  load(): void {
    resetLog();
    const r = c.bpf_object__load(this.obj);
    if (r < 0) throw new BpfError('bpf_object__load', -r, `cannot load ${this.path} into the kernel`, explainLog());
    this.loaded = true;
  }

  programFd(name: string): number {
    const p = this.program(name);
    if (!p) throw new Error(`${this.path} has no program ${name}`);
    const fd = c.bpf_program__fd(p);
    if (fd < 0) throw new BpfError('bpf_program__fd', -fd, `program ${name} of ${this.path} is not loaded`);
    return fd;
  }

  mapFd(name: string): number {
    const map = c.bpf_object__find_map_by_name(this.obj, name);
    if (!map) throw new Error(`${this.path} has no map ${name}`);
    const fd = c.bpf_map__fd(map);
    if (fd < 0) throw new BpfError('bpf_map__fd', -fd, `map ${name} of ${this.path} is not created`);
    return fd;
  }

  /** Close the object. Loaded programs and maps live on while something
   *  (a pin, a prog array, a link, a dup'ed fd) still refers to them. */
  close(): void {
    if (this.obj) c.bpf_object__close(this.obj);
    this.obj = null;
    this.loaded = false;
  }

  get isLoaded(): boolean {
    return this.loaded;
  }
}
