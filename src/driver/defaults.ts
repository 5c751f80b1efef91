/** Defaults shared by the driver and its command line, kept apart so the CLI can show them without loading the driver. */
/** The CSI driver name each backend registers under (--driver-name overrides it). */
export const DRIVER_NAMES = { local: 'local.csi.stowage.dev', rbd: 'rbd.csi.stowage.dev', cephfs: 'cephfs.csi.stowage.dev' } as const;
export type BackendKind = keyof typeof DRIVER_NAMES;

export const DEFAULT_RBD_STATE_DIR = '/var/lib/stowage/rbd';
export const DEFAULT_CEPHFS_STATE_DIR = '/var/lib/stowage/cephfs';
/** Where a kubelet keeps staging and publish paths; the node service accepts paths only beneath it (--kubelet-dir). */
export const DEFAULT_KUBELET_DIR = '/var/lib/kubelet';
