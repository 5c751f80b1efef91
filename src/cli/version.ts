// The CLI's version, shown by --version and sent in the User-Agent ("stowage/0.1.0 (linux/x64)"),
// whose program name the API server records as the manager of the CLI's writes.
export const CLI_VERSION = '0.1.0';

export const USER_AGENT = `stowage/${CLI_VERSION} (${process.platform}/${process.arch})`;
