#pragma once
// The status page's only script, inline (no external assets). The page is
// whole without it (read-only, refreshed by <meta refresh> in <noscript>);
// with it:
//  - the member controls show (html.js .js-only) and POST to
//    /pools/{pool}/members/{member}/{drain|undrain|weight} with
//    "Authorization: Bearer TOKEN", names percent-encoded, and the server's
//    answer (status and body) is shown in #control-result;
//  - the token is typed once into #token (no <form>: nothing can submit it
//    into a URL) and kept in sessionStorage only (this tab, until it closes
//    or "forget" is pressed);
//  - every 2 s the page is fetched again and #live replaced by the new one,
//    except while an input or select has the focus (the operator is typing).

#include <string_view>

namespace lb {

inline constexpr std::string_view kStatusPageScript = R"JS(
(function () {
  'use strict';
  var KEY = 'ringlb-admin-token';
  var $ = function (id) { return document.getElementById(id); };
  document.documentElement.classList.add('js');

  function token() { try { return sessionStorage.getItem(KEY) || ''; } catch (e) { return ''; } }
  function showToken() {
    var kept = token() !== '';
    $('token-state').textContent = kept ? 'A token is kept for this tab.' : 'No token kept: enter it once.';
    $('forget-token').hidden = !kept;
  }
  function say(text, ok) {
    var out = $('control-result');
    out.textContent = text;
    out.className = ok ? 'ok' : 'error';
  }
  function useToken() {
    var t = $('token').value.trim();
    $('token').value = '';
    if (t) sessionStorage.setItem(KEY, t);
    showToken();
  }
  $('use-token').addEventListener('click', useToken);
  $('token').addEventListener('keydown', function (e) { if (e.key === 'Enter') useToken(); });
  $('forget-token').addEventListener('click', function () {
    sessionStorage.removeItem(KEY);
    showToken();
    say('The token is forgotten.', true);
  });
  showToken();

  function headers() {
    var h = {};
    if (token()) h.Authorization = 'Bearer ' + token();
    return h;
  }

  async function act(pool, member, action, body) {
    var url = '/pools/' + encodeURIComponent(pool) + '/members/' + encodeURIComponent(member) + '/' + action;
    var what = action + ' ' + pool + '/' + member + (action === 'weight' ? ' ' + body : '');
    try {
      var r = await fetch(url, { method: 'POST', headers: headers(), body: body, cache: 'no-store',
                                 credentials: 'omit' });
      var text = (await r.text()).trim();
      var hint = r.status === 401 ? (token() ? ' (is the token right?)' : ' (enter the admin token above)') : '';
      say(what + ': ' + r.status + ' ' + r.statusText + ': ' + text + hint, r.ok);
      if (r.ok) refresh(true);
    } catch (e) {
      say(what + ': no answer (' + e.message + ')', false);
    }
  }

  document.addEventListener('click', function (e) {
    var button = e.target.closest('button[data-action]');
    if (!button) return;
    var row = button.closest('tr[data-member]');
    var action = button.dataset.action;
    var body = '';
    if (action === 'weight') body = row.querySelector('input.weight').value.trim();
    act(row.closest('table[data-pool]').dataset.pool, row.dataset.member, action, body);
  });

  function typing() {
    var a = document.activeElement;
    return a && (a.tagName === 'INPUT' || a.tagName === 'SELECT' || a.tagName === 'TEXTAREA');
  }
  var busy = false;
  async function refresh(now) {
    if (busy || (!now && typing())) return;
    busy = true;
    try {
      var r = await fetch(location.pathname, { headers: headers(), cache: 'no-store', credentials: 'omit' });
      if (!r.ok) throw new Error(r.status + ' ' + r.statusText);
      var fresh = new DOMParser().parseFromString(await r.text(), 'text/html').getElementById('live');
      // Never under a focused input, even after an action: the operator may
      // have started typing while the fetch was out.
      if (fresh && !typing()) $('live').innerHTML = fresh.innerHTML;
      $('refresh-state').textContent = 'Updated ' + new Date().toLocaleTimeString() + '.';
    } catch (e) {
      $('refresh-state').textContent = 'Refresh failed: ' + e.message + ' (retrying).';
    } finally {
      busy = false;
    }
  }
  setInterval(refresh, 2000);
})();
)JS";

}  // namespace lb
