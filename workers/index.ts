import { Hono } from 'hono';
export { ChannelActor } from '../objects/channel';
const app = new Hono<{ Bindings: Env }>();
app.get('/health', (c) => c.json({ status: 'ok' }));
export default app;
