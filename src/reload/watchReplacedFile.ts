import { watch } from "node:fs";
import * as path from "node:path";

export interface FileWatch {
  close(): void;
}

/**
 * Call `onChange` (debounced) when `file` changes. Watches the file's directory, not the file:
 * editors and modelgate's own atomic writers (`trust add`, `token revoke`) replace a file by
 * rename, which a watch on the old inode would miss.
 */
export function watchReplacedFile(file: string, onChange: () => void, options: { debounceMs: number; onError: (err: Error) => void }): FileWatch {
  const base = path.basename(file);
  let timer: NodeJS.Timeout | undefined;
  const watcher = watch(path.dirname(path.resolve(file)), (_event, changed) => {
    if (changed !== null && changed !== base) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      onChange();
    }, options.debounceMs);
  });
  watcher.on("error", options.onError);
  return {
    close: () => {
      watcher.close();
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
  };
}
