import type { IdentityService } from '../csi/server.js';
import type { BackendCommon } from './backends/backend.js';

export interface IdentityDeps {
  driverName: string;
  version: string;
  backend: BackendCommon;
  servesController: boolean;
  /** Advertise GROUP_CONTROLLER_SERVICE (the backend cuts group snapshots). */
  servesGroupController?: boolean;
  /** Advertise VOLUME_ACCESSIBILITY_CONSTRAINTS (volumes reachable from some nodes only). */
  accessibilityConstraints: boolean;
}

/** The CSI Identity service: who we are, what we can do, and whether we are ready. */
export function identityService({ driverName, version, backend, servesController, servesGroupController, accessibilityConstraints }: IdentityDeps): IdentityService {
  return {
    async GetPluginInfo() {
      return { name: driverName, vendor_version: version, manifest: { backend: backend.kind } };
    },

    async GetPluginCapabilities() {
      const capabilities: object[] = [
        ...(accessibilityConstraints ? [{ service: { type: 'VOLUME_ACCESSIBILITY_CONSTRAINTS' } }] : []),
        { volume_expansion: { type: 'ONLINE' } },
      ];
      if (servesGroupController) capabilities.unshift({ service: { type: 'GROUP_CONTROLLER_SERVICE' } });
      if (servesController) capabilities.unshift({ service: { type: 'CONTROLLER_SERVICE' } });
      return { capabilities };
    },

    async Probe() {
      return { ready: { value: await backend.ready() } };
    },
  };
}
