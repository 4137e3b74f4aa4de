// A fake GTM container, allowed as statistics, that brings marketing tags the way GTM's
// custom HTML and tag templates do.
(function () {
  (window.__ran = window.__ran || []).push('gtm');
  var s = document.createElement('script');
  s.src = 'https://connect.facebook.net/en_US/fbevents.js?t=gtm-pixel-m';
  document.head.appendChild(s);
  new Image().src = 'https://www.facebook.com/tr?t=gtm-img-m';
  var d = document.createElement('div');
  d.innerHTML = '<img src="https://www.facebook.com/tr?t=gtm-html-m"><iframe src="https://www.youtube.com/embed/x?t=gtm-yt-m"></iframe>';
  document.body.appendChild(d);
  document.cookie = '_gcl_au=1.1.123; path=/; max-age=7776000';
  fetch('https://www.google-analytics.com/g/collect?t=gtm-hit-s', {mode: 'no-cors'});
})();
