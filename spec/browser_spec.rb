# frozen_string_literal: true

require "spec_helper"
require "json"
require "selenium-webdriver"

# The Comet demo in a real headless Chromium (Debian's chromium + chromium-driver).
RSpec.describe "the Comet demo in a browser" do
  def browser
    dir = Dir.mktmpdir("lunar-chromium")
    options = Selenium::WebDriver::Chrome::Options.new(binary: "/usr/bin/chromium")
    %w[--headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update
       --no-first-run --disable-sync --disable-dev-shm-usage].each { |a| options.add_argument(a) }
    options.add_argument("--ignore-certificate-errors") # the https example's self-signed certificate
    options.add_argument("--user-data-dir=#{dir}")
    service = Selenium::WebDriver::Service.chrome(path: "/usr/bin/chromedriver")
    driver = Selenium::WebDriver.for(:chrome, options: options, service: service)
    (@drivers ||= []) << [driver, dir]
    driver
  end

  after do
    (@drivers || []).each do |driver, dir|
      driver.quit rescue nil # rubocop:disable Style/RescueModifier -- already quit in the spec
      FileUtils.rm_rf(dir)
    end
  end

  def stats(port, tls)
    Net::HTTP.start("127.0.0.1", port, use_ssl: tls, verify_mode: OpenSSL::SSL::VERIFY_NONE) do |http|
      JSON.parse(http.get("/stats").body)
    end
  end

  # Thin's TLS flags, with the suite's self-signed certificate.
  def tls_flags
    cert, key = TestCertificate.files
    ["--ssl", "--ssl-cert-file", cert, "--ssl-key-file", key]
  end

  def list_text(driver, id)
    driver.find_element(id: id).text
  end

  [["Rack", "config.ru", false], ["Sinatra stream(:keep_open)", "sinatra.ru", false],
   ["Rack over https, HTTP/2", "config.ru", true]].each do |variant, file, tls|
    it "delivers a message from one page to another by EventSource, long-poll and WebSocket (#{variant}), and forgets closed pages" do
      # A comet server always has pending responses: TERM waits --shutdown-timeout for them.
      child = spawn_child(lunar_cmd("--evented", "--shutdown-timeout", "2", "-b", "tcp://127.0.0.1:0", *(tls ? tls_flags : []),
                                    File.join(ProcessHelpers::ROOT, "examples/comet", file)))
      scheme = tls ? "https" : "http"
      port = Integer(child.wait_for(%r{listening on #{tls ? "ssl" : "tcp"}://127\.0\.0\.1:(\d+)})[1])
      sender = browser
      receiver = browser
      sender.navigate.to("#{scheme}://127.0.0.1:#{port}/")
      receiver.navigate.to("#{scheme}://127.0.0.1:#{port}/?native=1")
      protocol = receiver.execute_script("return performance.getEntriesByType('navigation')[0].nextHopProtocol")
      expect(protocol).to eq(tls ? "h2" : "http/1.1")
      eventually(timeout: 15) { stats(port, tls).values_at("streams", "polls", "sockets") == [2, 2, 2] }

      sender.find_element(id: "msg").send_keys("hello from the browser")
      sender.find_element(id: "send").click
      wait = Selenium::WebDriver::Wait.new(timeout: 10)
      [receiver, sender].each do |page|
        wait.until { list_text(page, "events").include?("#1 hello from the browser") }
        wait.until { list_text(page, "polls").include?("#1 hello from the browser") }
        wait.until { list_text(page, "sockets").include?("#1 hello from the browser") }
      end
      expect(list_text(receiver, "events").lines.size).to eq(1) # once, not twice

      receiver.quit
      eventually(timeout: 15) { stats(port, tls).values_at("streams", "polls", "sockets") == [1, 1, 1] }
      child.signal("TERM")
      expect(child.exit_status.exitstatus).to eq(0)
    end
  end

  it "spans the workers of a cluster through Redis: pages from different workers see each other's messages" do
    redis = RedisServer.instance.start
    redis.cli("DEL", "comet:messages", "comet:messages:last_id")
    child = spawn_child(lunar_cmd("--evented", "-w", "2", "--shutdown-timeout", "2", "-b", "tcp://127.0.0.1:0",
                                  File.join(ProcessHelpers::ROOT, "examples/comet/config.ru")), env: { "REDIS_URL" => redis.url })
    port = Integer(child.wait_for(%r{cluster of 2 workers.*listening on tcp://127\.0\.0\.1:(\d+)})[1])
    native = browser
    native.navigate.to("http://127.0.0.1:#{port}/?native=1")
    native_pid = native.find_element(id: "worker").text
    # A new browser opens new connections, which either worker may accept: the kernel wakes
    # both, and under load one of them can win many times running (twelve once on CI), so
    # it takes up to 30 tries, stopping at the first page from the other worker.
    thin_style = nil
    30.times do
      page = browser
      page.navigate.to("http://127.0.0.1:#{port}/")
      break thin_style = page if page.find_element(id: "worker").text != native_pid

      page.quit
    end
    expect(thin_style).not_to be_nil, "thirty pages in a row came from one worker"

    wait = Selenium::WebDriver::Wait.new(timeout: 15)
    [[native, thin_style, "from the native page"], [thin_style, native, "from the async.callback page"]].each do |from, to, text|
      from.find_element(id: "msg").send_keys(text)
      from.find_element(id: "send").click
      %w[events polls sockets].each { |list| wait.until { list_text(to, list).include?(text) } }
    end
    child.signal("TERM")
    expect(child.exit_status.exitstatus).to eq(0)
  end

  it "runs ActionCable (Rails 6.1): the JavaScript client subscribes, sends, and gets a broadcast made by another request", rack: 2 do
    child = spawn_child(lunar_cmd("--threaded", "-e", "production", "-b", "tcp://127.0.0.1:0",
                                  File.join(ProcessHelpers::ROOT, "examples/actioncable/config.ru")))
    port = Integer(child.wait_for(%r{listening on tcp://127\.0\.0\.1:(\d+)})[1])
    page = browser
    page.navigate.to("http://127.0.0.1:#{port}/")
    wait = Selenium::WebDriver::Wait.new(timeout: 15)
    wait.until { page.find_element(id: "state").text == "connected" } # subscribed over a hijacked WebSocket
    page.find_element(id: "send").click
    wait.until { list_text(page, "messages").include?("said: hi") }
    Net::HTTP.post_form(URI("http://127.0.0.1:#{port}/broadcast"), "text" => "from another request")
    wait.until { list_text(page, "messages").include?("from another request") }
    child.signal("TERM")
    expect(child.exit_status.exitstatus).to eq(0)
  end
end
