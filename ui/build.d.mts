export declare const DEFAULT_OUT: string;
export interface UiBuild {
  outDir: string;
  script: string;
  style: string;
  jsBytes: number;
  jsGzipBytes: number;
}
export declare function buildUi(opts?: { outDir?: string }): Promise<UiBuild>;
