/** Defaults shared by the driver and its command line, kept apart so the CLI can show them without loading the driver. */
export const DEFAULT_RBD_STATE_DIR = '/var/lib/stowage/rbd';
export const DEFAULT_CEPHFS_STATE_DIR = '/var/lib/stowage/cephfs';
