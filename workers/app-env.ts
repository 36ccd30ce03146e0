import type { Principal } from '../shared/principal';

/** Hono typing shared by every router: `new Hono<AppEnv>()` / `new OpenAPIHono<AppEnv>()`. */
export interface AppEnv {
  Bindings: Env;
  Variables: {
    principal: Principal;
  };
}
