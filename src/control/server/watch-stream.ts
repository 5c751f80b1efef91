// ?watch=1: a chunked response of newline-delimited JSON watch events ({"type":…,"object":…}),
// as the Kubernetes API server streams them. A stream ends when the client goes away, when
// timeoutSeconds elapse, or when the server closes.
import type { ServerResponse } from 'node:http';
import type { ResourceInfo } from '../api/registry.js';
import type { Store, WatchOptions } from '../store/store.js';

export class WatchStreams {
  private readonly open = new Set<() => void>();

  serve(store: Store, resource: ResourceInfo, options: WatchOptions, timeoutSeconds: number | undefined, res: ServerResponse): void {
    // The initial events arrive inside store.watch(), before the headers may be sent: subscribing
    // first lets an Expired or BadRequest error still become a plain error response.
    const initial: string[] = [];
    let streaming = false;
    const unsubscribe = store.watch(resource.plural, options, (event) => {
      const line = `${JSON.stringify(event)}\n`;
      if (streaming) res.write(line);
      else initial.push(line);
    });
    let timer: NodeJS.Timeout | undefined;
    const finish = (): void => {
      if (!this.open.delete(finish)) return;
      unsubscribe();
      clearTimeout(timer);
      res.end();
    };
    this.open.add(finish);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
    // Clients wait for the headers before reading events; send them even if no event comes.
    res.flushHeaders();
    streaming = true;
    for (const line of initial) res.write(line);
    res.on('close', finish);
    if (timeoutSeconds !== undefined && timeoutSeconds > 0) timer = setTimeout(finish, timeoutSeconds * 1000);
  }

  /** Ends every open watch (server shutdown). */
  closeAll(): void {
    for (const finish of [...this.open]) finish();
  }
}
