// Command vcsim runs govmomi's vSphere API simulator for swarmlab's tests and demos.
//
// Debian's golang-github-vmware-govmomi-dev ships the simulator library but no vcsim program,
// so this is the project's own small main. It prints one machine-readable line,
//
//	VCSIM_URL=https://127.0.0.1:PORT/sdk
//
// (never the password), serves until SIGTERM or SIGINT, then removes the containers of
// container-backed VMs and its temporary datastore folders before exiting.
//
// With -template NAME it also turns one of the model's VMs into a ready template: powered
// off, renamed NAME, with a snapshot "base" for linked clones and VMware Tools reported as
// installed (the model's VMs all say toolsNotInstalled, which a real template must not).
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"
)

// templateSource is the model VM (in cluster DC0_C0) that -template turns into the template.
const templateSource = "DC0_C0_RP0_VM0"

func main() {
	listen := flag.String("l", "127.0.0.1:0", "listen address (port 0 picks a free port)")
	username := flag.String("username", "", "accept only this user name (default: any user)")
	password := flag.String("password", "", "accept only this password (default: any non-empty)")
	tlsCert := flag.String("tlscert", "", "PEM certificate to serve (default: built-in)")
	tlsKey := flag.String("tlskey", "", "PEM private key of -tlscert")
	plainHTTP := flag.Bool("http", false, "serve plain HTTP instead of HTTPS")
	esx := flag.Bool("esx", false, "simulate a bare ESXi host instead of vCenter")
	template := flag.String("template", "", "prepare a template of this name (see above)")
	flag.Parse()

	if (*username == "") != (*password == "") {
		log.Fatal("give -username and -password together")
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		log.Fatal("give -tlscert and -tlskey together")
	}

	model := simulator.VPX()
	if *esx {
		model = simulator.ESX()
	}
	if err := model.Create(); err != nil {
		log.Fatalf("creating the inventory: %s", err)
	}
	// Remove runs on every exit path from here on: it stops and removes VM containers.
	defer model.Remove()

	if *template != "" {
		if err := prepareTemplate(model, *template); err != nil {
			model.Remove()
			log.Fatalf("preparing template %s: %s", *template, err)
		}
	}

	if !*plainHTTP {
		config := new(tls.Config)
		if *tlsCert != "" {
			pair, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
			if err != nil {
				model.Remove()
				log.Fatalf("loading -tlscert/-tlskey: %s", err)
			}
			config.Certificates = []tls.Certificate{pair}
		}
		model.Service.TLS = config
	}
	model.Service.Listen = &url.URL{Host: *listen}
	if *username != "" {
		model.Service.Listen.User = url.UserPassword(*username, *password)
	}

	server := model.Service.NewServer()
	printed := *server.URL
	printed.User = nil
	fmt.Printf("VCSIM_URL=%s\n", printed.String())
	// Tests read the line above through a pipe: flush it now, not at exit.
	_ = os.Stdout.Sync()

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	<-signals
	server.Close()
}

// prepareTemplate turns templateSource into a template named name, talking to the model
// in-process (no network) before the server starts.
func prepareTemplate(model *simulator.Model, name string) error {
	ctx := context.Background()
	client, err := vim25.NewClient(ctx, model.Service)
	if err != nil {
		return err
	}
	finder := find.NewFinder(client, true)
	datacenter, err := finder.DefaultDatacenter(ctx)
	if err != nil {
		return err
	}
	finder.SetDatacenter(datacenter)
	vm, err := finder.VirtualMachine(ctx, templateSource)
	if err != nil {
		return err
	}
	steps := []func() (*object.Task, error){
		func() (*object.Task, error) { return vm.PowerOff(ctx) },
		func() (*object.Task, error) { return vm.Rename(ctx, name) },
		func() (*object.Task, error) {
			return vm.CreateSnapshot(ctx, "base", "linked clones start here", false, false)
		},
	}
	for _, step := range steps {
		task, err := step()
		if err != nil {
			return err
		}
		if err := task.Wait(ctx); err != nil {
			return err
		}
	}
	if err := vm.MarkAsTemplate(ctx); err != nil {
		return err
	}
	// What a template with open-vm-tools shows on a real vCenter while powered off. The
	// server is not started yet, so plain assignment races with nothing.
	simulated := simulator.Map.Get(vm.Reference()).(*simulator.VirtualMachine)
	simulated.Guest.ToolsStatus = types.VirtualMachineToolsStatusToolsNotRunning
	simulated.Guest.ToolsVersion = "12352"
	simulated.Guest.ToolsVersionStatus2 = string(types.VirtualMachineToolsVersionStatusGuestToolsUnmanaged)
	simulated.Summary.Guest.ToolsStatus = simulated.Guest.ToolsStatus
	return nil
}
