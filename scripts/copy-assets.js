// Copies non-TypeScript assets (the CSI .proto) next to the compiled code.
import { cpSync, mkdirSync } from 'node:fs';
mkdirSync('dist/src/csi', { recursive: true });
cpSync('src/csi/csi.proto', 'dist/src/csi/csi.proto');
