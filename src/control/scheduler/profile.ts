// Scheduler profiles, as kube-scheduler's KubeSchedulerConfiguration profiles: a schedulerName and
// the plugins it runs, in order, with a weight for those that score. A pod is scheduled by the
// profile named in its spec.schedulerName (empty: default-scheduler); pods naming a scheduler no
// profile has are left alone, for that scheduler. A second profile is one more entry in PROFILES
// (or SchedulerOptions.profiles); plugins are built once per (name, args) from PLUGINS and shared.
//
// The default profile is kube-scheduler's default plugin set, as far as Stowage has the plugins, in
// its order (Filter order decides which reason a node is counted under) and with its default score
// weights: TaintToleration 3, NodeAffinity 2, NodeResourcesFit 1, PodTopologySpread 2,
// InterPodAffinity 2, NodeResourcesBalancedAllocation 1, ImageLocality 1.
import type { Plugin } from './framework.js';
import type { PluginContext } from './plugin-context.js';
import { DefaultBinder } from './plugins/default-binder.js';
import { DefaultPreemption } from './plugins/default-preemption.js';
import { ImageLocality } from './plugins/image-locality.js';
import { InterPodAffinity } from './plugins/inter-pod-affinity.js';
import { NodeAffinity } from './plugins/node-affinity.js';
import { NodeName } from './plugins/node-name.js';
import { NodePorts } from './plugins/node-ports.js';
import { NodeResourcesBalancedAllocation } from './plugins/node-resources-balanced-allocation.js';
import { NodeResourcesFit, type NodeResourcesFitArgs } from './plugins/node-resources-fit.js';
import { NodeUnschedulable } from './plugins/node-unschedulable.js';
import { NodeVolumeLimits } from './plugins/node-volume-limits.js';
import { PodTopologySpread } from './plugins/pod-topology-spread.js';
import { TaintToleration } from './plugins/taint-toleration.js';
import { VolumeBinding } from './plugins/volume-binding.js';
import { VolumeRestrictions } from './plugins/volume-restrictions.js';
import { VolumeZone } from './plugins/volume-zone.js';

export const DEFAULT_SCHEDULER_NAME = 'default-scheduler';

/** The in-tree plugin registry: name → how it is built. */
export const PLUGINS: Readonly<Record<string, (ctx: PluginContext, args: Record<string, unknown>) => Plugin>> = {
  NodeUnschedulable: () => new NodeUnschedulable(),
  NodeName: () => new NodeName(),
  TaintToleration: () => new TaintToleration(),
  NodeAffinity: () => new NodeAffinity(),
  NodePorts: () => new NodePorts(),
  NodeResourcesFit: (_ctx, args) => new NodeResourcesFit(args as NodeResourcesFitArgs),
  VolumeRestrictions: (ctx) => new VolumeRestrictions(ctx),
  NodeVolumeLimits: (ctx) => new NodeVolumeLimits(ctx),
  VolumeBinding: (ctx) => new VolumeBinding(ctx),
  VolumeZone: (ctx) => new VolumeZone(ctx),
  PodTopologySpread: (ctx) => new PodTopologySpread(ctx),
  InterPodAffinity: (ctx) => new InterPodAffinity(ctx),
  NodeResourcesBalancedAllocation: () => new NodeResourcesBalancedAllocation(),
  ImageLocality: (ctx) => new ImageLocality(ctx),
  DefaultPreemption: (ctx) => new DefaultPreemption(ctx),
  DefaultBinder: (ctx) => new DefaultBinder(ctx),
};

export interface ProfileConfig {
  schedulerName: string;
  /** In order; weight applies to Score (default 1); args as kube-scheduler's pluginConfig (e.g. NodeResourcesFit's scoringStrategy). */
  plugins: readonly { name: string; weight?: number; args?: Record<string, unknown> }[];
}

export const DEFAULT_PROFILE: ProfileConfig = {
  schedulerName: DEFAULT_SCHEDULER_NAME,
  plugins: [
    { name: 'NodeUnschedulable' },
    { name: 'NodeName' },
    { name: 'TaintToleration', weight: 3 },
    { name: 'NodeAffinity', weight: 2 },
    { name: 'NodePorts' },
    { name: 'NodeResourcesFit', weight: 1 },
    { name: 'VolumeRestrictions' },
    { name: 'NodeVolumeLimits' },
    { name: 'VolumeBinding' },
    { name: 'VolumeZone' },
    { name: 'PodTopologySpread', weight: 2 },
    { name: 'InterPodAffinity', weight: 2 },
    { name: 'DefaultPreemption' },
    { name: 'NodeResourcesBalancedAllocation', weight: 1 },
    { name: 'ImageLocality', weight: 1 },
    { name: 'DefaultBinder' },
  ],
};

export const PROFILES: readonly ProfileConfig[] = [DEFAULT_PROFILE];
