import { measureLb } from './lb.js';
import { measureSampler } from './sampler.js';
import { measureDispatch } from './dispatch.js';
import { measureFilter } from './filter.js';
const what = process.argv[2] ?? 'lb';
const rounds = Number(process.env.R ?? 5), repeat = Number(process.env.N ?? 100000);
if (what === 'lb') { const r = measureLb(rounds, repeat); for (const c of r.cases) console.log(c.name.padEnd(20), c.ns.median, c.aboveFloor); console.log('apply large', r.applyLargeMs.median.toFixed(1), 'one', r.applyOneMs.median.toFixed(1), r.applyOneMs.samples.map(x=>x.toFixed(1)).join(' ')); }
if (what === 'd') { const r = measureDispatch(rounds, repeat); for (const c of r.cases) console.log(c.name.padEnd(20), c.ns.median, c.aboveFloor); }
if (what === 's') { const r = measureSampler(rounds, repeat); for (const c of r.cases) console.log(c.name.padEnd(40), c.ns.median, c.aboveFloor); }
if (what === 'f') { const r = measureFilter(rounds, repeat); for (const c of r.cases) console.log(c.name.padEnd(40), c.ns.median, c.aboveFloor); }
