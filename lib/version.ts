/** The client version, from deno.json (recorded in every manifest). */
import denoJson from "../deno.json" with { type: "json" };

export const VERSION: string = denoJson.version;
