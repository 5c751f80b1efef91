// A node's kubelet root (<state>/nodes/<node>/), laid out as the kubelet lays out /var/lib/kubelet,
// so the paths a user sees in `findmnt` match seed 000's:
//
//   plugins/kubernetes.io/csi/pv/<pv>/globalmount      NodeStageVolume's staging path
//   plugins/kubernetes.io/csi/pv/<pv>/vol_data.json    what was staged (written before the call)
//   pods/<uid>/volumes/kubernetes.io~csi/<pv>/mount    NodePublishVolume's target path
//   pods/<uid>/volumes/kubernetes.io~csi/<pv>/vol_data.json
//   plugins/kubernetes.io/csi/volumeDevices/staging/<pv>          raw block: NodeStageVolume's staging path
//   plugins/kubernetes.io/csi/volumeDevices/publish/<pv>/<uid>    raw block: NodePublishVolume's target (a file)
//   plugins/kubernetes.io/csi/volumeDevices/<pv>/data/vol_data.json  raw block: what was staged
//   pods/<uid>/volumeDevices/kubernetes.io~csi/<pv>               raw block: symlink to the pod's target
//   pods/<uid>/volumes/kubernetes.io~empty-dir/<name>  emptyDir (tmpfs for medium: Memory)
//   pods/<uid>/volumes/kubernetes.io~configmap/<name>  configMap files
//   pods/<uid>/volumes/kubernetes.io~secret/<name>     secret files (on tmpfs, never on disk)
//   pods/<uid>/containers/...                          the runtime's (runtime/pod-runtime.ts)
//
// The vol_data.json records are what lets a restarted agent unpublish and unstage volumes whose
// PV or pod objects are already gone: a record is written before the CSI call that needs undoing.
import { join } from 'node:path';

/** Names that become one path component: no separators, no dot-dot, no NUL. */
export function safeComponent(what: string, name: string): string {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new Error(`${what} ${JSON.stringify(name)} cannot be used as a path component`);
  }
  return name;
}

export const CSI_PLUGIN_DIR = 'kubernetes.io~csi';
export const EMPTY_DIR_PLUGIN_DIR = 'kubernetes.io~empty-dir';
export const CONFIG_MAP_PLUGIN_DIR = 'kubernetes.io~configmap';
export const SECRET_PLUGIN_DIR = 'kubernetes.io~secret';
export const VOL_DATA = 'vol_data.json';

export class NodeLayout {
  constructor(readonly root: string) {}

  get podsDir(): string {
    return join(this.root, 'pods');
  }

  get stagingRoot(): string {
    return join(this.root, 'plugins', 'kubernetes.io', 'csi', 'pv');
  }

  stagingDir(pvName: string): string {
    return join(this.stagingRoot, safeComponent('PersistentVolume name', pvName));
  }

  stagingPath(pvName: string): string {
    return join(this.stagingDir(pvName), 'globalmount');
  }

  /** Raw block volumes (volumeDevices), where the kubelet's CSI block mapper puts them. */
  get blockRoot(): string {
    return join(this.root, 'plugins', 'kubernetes.io', 'csi', 'volumeDevices');
  }

  blockStagingPath(pvName: string): string {
    return join(this.blockRoot, 'staging', safeComponent('PersistentVolume name', pvName));
  }

  blockPublishDir(pvName: string): string {
    return join(this.blockRoot, 'publish', safeComponent('PersistentVolume name', pvName));
  }

  blockPublishPath(pvName: string, uid: string): string {
    return join(this.blockPublishDir(pvName), safeComponent('pod UID', uid));
  }

  blockDataDir(pvName: string): string {
    return join(this.blockRoot, safeComponent('PersistentVolume name', pvName), 'data');
  }

  podDeviceDir(uid: string): string {
    return join(this.podDir(uid), 'volumeDevices', CSI_PLUGIN_DIR);
  }

  podDevicePath(uid: string, pvName: string): string {
    return join(this.podDeviceDir(uid), safeComponent('PersistentVolume name', pvName));
  }

  podDir(uid: string): string {
    return join(this.podsDir, safeComponent('pod UID', uid));
  }

  podVolumesDir(uid: string, plugin: string): string {
    return join(this.podDir(uid), 'volumes', plugin);
  }

  publishDir(uid: string, pvName: string): string {
    return join(this.podVolumesDir(uid, CSI_PLUGIN_DIR), safeComponent('PersistentVolume name', pvName));
  }

  publishPath(uid: string, pvName: string): string {
    return join(this.publishDir(uid, pvName), 'mount');
  }

  volumeDir(uid: string, plugin: string, volumeName: string): string {
    return join(this.podVolumesDir(uid, plugin), safeComponent('volume name', volumeName));
  }
}

/** A node's own state (its driver's sockets and state, its pods' runtime files) under `stowage up`'s state directory. */
export function nodeRoot(stateDir: string, nodeName: string): string {
  return join(stateDir, 'nodes', nodeName);
}
