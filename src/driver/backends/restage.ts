/**
 * A NodeStageVolume repeated at a staging path that already holds the volume: OK when it asks for
 * the staging that is there, ALREADY_EXISTS when it asks for another one (the spec's "volume
 * previously staged with different flags": read-only vs read-write, other mount flags). Answering
 * OK there would tell the CO its flags were applied when they were not.
 */
import { AlreadyExistsError } from '../../csi/errors.js';

export interface StagingShape {
  readonly: boolean;
  /** The capability's mount flags; undefined when not known (a stash older than this check). */
  mountFlags?: readonly string[] | undefined;
}

/** Why `asked` is not the staging `had`, or undefined when it is. Mount flags compare as sets. */
export function stagingDifference(had: StagingShape, asked: StagingShape): string | undefined {
  if (had.readonly !== asked.readonly) return `it is staged ${had.readonly ? 'read-only' : 'read-write'}, not ${asked.readonly ? 'read-only' : 'read-write'}`;
  if (had.mountFlags === undefined || asked.mountFlags === undefined) return undefined;
  const a = [...new Set(had.mountFlags)].sort().join(',');
  const b = [...new Set(asked.mountFlags)].sort().join(',');
  return a === b ? undefined : `it is staged with mount flags [${a}], not [${b}]`;
}

export function requireSameStaging(volumeId: string, stagingPath: string, had: StagingShape, asked: StagingShape): void {
  const why = stagingDifference(had, asked);
  if (why) throw new AlreadyExistsError(`volume ${volumeId} is already staged at ${stagingPath} and ${why}; unstage it first`);
}
