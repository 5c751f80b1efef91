// One pool's space as one bar, the same for node pools and Ceph pools: used, then what is
// provisioned beyond it, then what is still free; widths are shares of the larger of used and
// provisioned plus free (a Ceph pool's stored bytes may exceed what its PVs ask for).
import { bytes } from './format.js';

export function UsageBar(props: { used: number | undefined; provisioned: number; free: number | undefined }) {
  const used = props.used ?? 0;
  const free = props.free ?? 0;
  const total = Math.max(used, props.provisioned) + free || 1;
  const pct = (n: number): string => `${((100 * n) / total).toFixed(2)}%`;
  return (
    <div class="bar" title={`${bytes(props.used)} used, ${bytes(props.provisioned)} provisioned, ${props.free === undefined ? 'unknown' : bytes(props.free)} free`}>
      <span class="used" style={{ width: pct(used) }} />
      <span class="provisioned" style={{ width: pct(Math.max(0, props.provisioned - used)) }} />
      <span class="free" style={{ width: pct(free) }} />
    </div>
  );
}
