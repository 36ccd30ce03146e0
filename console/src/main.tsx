/** The Edgeflux web console: a single-page app served by the worker at `/` (docs/console.md). */
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { decodeSegment, match, navigate, requestFocus, safeNext, useLocation, visitCount } from './router';
import { session } from './session';
import { LoginPage } from './pages/login';
import { Shell, HomePage } from './pages/shell';
import { AppsPage, ChannelsPage, DevicesPage, KeysPage } from './pages/resources';
import { MembersPage } from './pages/members';
import { ConnectionsPage } from './pages/connections';
import { LivePage } from './pages/live';
import { HistoryPage } from './pages/history';
import { ChannelSettingsPage } from './pages/settings';

const sections = {
  devices: DevicesPage,
  channels: ChannelsPage,
  connections: ConnectionsPage,
  apps: AppsPage,
  keys: KeysPage,
  members: MembersPage,
} as const;

/**
 * Each page is keyed by its org (and channel) and by the visit: another org, or the same section
 * clicked again, starts it afresh — no secret shown once, filter, page or open dialog carries over.
 */
function Routes({ path }: { path: string }) {
  let m: Record<string, string> | null;
  const visit = visitCount();
  if ((m = match('/o/:org/channels/:id/history', path))) return <HistoryPage key={`${m.org}/${m.id}/${visit}`} org={m.org!} channel={m.id!} />;
  if ((m = match('/o/:org/channels/:id/settings', path))) return <ChannelSettingsPage key={`${m.org}/${m.id}/${visit}`} org={m.org!} channel={m.id!} />;
  if ((m = match('/o/:org/channels/:id', path))) return <LivePage key={`${m.org}/${m.id}/${visit}`} org={m.org!} channel={m.id!} />;
  if ((m = match('/o/:org/:section', path)) && m.section! in sections) {
    const Page = sections[m.section as keyof typeof sections];
    return <Page key={`${m.org}/${visit}`} org={m.org!} />;
  }
  return <HomePage />;
}

function Console() {
  const url = useLocation();
  const [signedIn, setSignedIn] = useState(() => session.get() !== null);
  // Signing in or out, like a navigation, gives focus to the heading of the page that comes
  // (`PageHeading`): the form or button that had it is gone, and a screen reader would say nothing of
  // the new page. Loading a page's URL asks for none (the browser starts at the top of the document),
  // but `/` goes on to an org's devices by navigate(), whose heading then takes focus.
  useEffect(
    () =>
      session.subscribe(() => {
        const now = session.get() !== null;
        setSignedIn((was) => {
          if (was !== now) requestFocus();
          return now;
        });
      }),
    [],
  );
  useEffect(() => {
    if (signedIn && url.pathname === '/login') navigate(safeNext(url.searchParams.get('next')), true);
  }, [signedIn, url.pathname]);
  if (!signedIn) return <LoginPage />;
  const orgId = /^\/o\/([^/]+)/.exec(url.pathname)?.[1];
  const org = orgId === undefined ? undefined : decodeSegment(orgId);
  return (
    <Shell org={org} path={url.pathname}>
      <Routes path={url.pathname} />
    </Shell>
  );
}

render(<Console />, document.getElementById('app')!);
